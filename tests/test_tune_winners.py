"""Tuning the generator on its winners between iterations: the rows, the refusals, and a real LoRA step."""

from __future__ import annotations

import json

import pytest

from convoforge.errors import ConvoforgeError
from convoforge.training.winners import tunable, tune_on_winners, winner_rows

PROMPT = [{"role": "system", "content": "Write a conversation."}, {"role": "user", "content": "User 1 persona: I ski."}]


def record(rid: str, prompt: list | None = PROMPT) -> dict:
    return {
        "id": rid,
        "profiles": {"User 1": ["I ski."], "User 2": ["I bake."]},
        "messages": [{"speaker": "User 1", "content": "I ski a lot."}, {"speaker": "User 2", "content": "I bake."}],
        "prompt": json.dumps(prompt) if prompt else "",
    }


def test_winner_rows_answer_each_winners_own_prompt_with_its_conversation():
    rows = winner_rows([record("a"), record("b", prompt=None)])
    assert [r["id"] for r in rows] == ["a"]  # a record without the prompt it was written in cannot teach it
    assert rows[0]["messages"] == [
        *PROMPT,
        {"role": "assistant", "content": "User 1: I ski a lot.\nUser 2: I bake."},
    ]


@pytest.mark.parametrize("spec", ["openai:gpt-4o-mini", "scripted:echo"])
def test_only_a_local_generator_is_tuned(spec):
    with pytest.raises(ConvoforgeError, match="--tune-steps tunes a local generator"):
        tunable(spec)


def test_tunable_keeps_adapter_and_bias():
    spec = "local:smollm2-135m+adapter=persona-generator+bias=persona-generator"
    assert tunable(spec) == ("smollm2-135m", "persona-generator", "persona-generator")


def test_no_winner_to_learn_from_is_an_error(tmp_path):
    with pytest.raises(ConvoforgeError, match="no winner"):
        tune_on_winners("local:smollm2-135m", [record("a", prompt=None)], tmp_path / "t", 1, 1e-4, 0)


@pytest.mark.slow
def test_a_tuned_generator_loads_on_top_of_the_shipped_one_and_writes_otherwise(tmp_path):
    from convoforge.llm import GenParams, load_chat_model
    from convoforge.llm.local import adapter_chain

    spec = "local:smollm2-135m+adapter=persona-generator+bias=persona-generator"
    winners = [record(f"w{k}") for k in range(2)]
    tuned, info = tune_on_winners(spec, winners, tmp_path / "tuned", steps=2, lr=5e-3, seed=0)
    assert tuned == f"local:smollm2-135m+adapter={(tmp_path / 'tuned').resolve()}+bias=persona-generator"
    assert info["rows"] == 2 and info["steps"] == 2 and info["first_loss"] > info["last_loss"]
    chain = adapter_chain(str(tmp_path / "tuned"))
    assert chain[-1] == (tmp_path / "tuned").resolve() and chain[0].name == "generator"  # the shipped one underneath
    messages = [{"role": m["role"], "content": m["content"]} for m in PROMPT]
    greedy = GenParams(temperature=0.0, max_tokens=24)
    before, after = (load_chat_model(s).chat(messages, greedy).texts[0] for s in (spec, tuned))
    assert after != before and after.startswith("User 1: I ski")


async def test_with_no_winner_yet_the_run_keeps_its_generator(tmp_path):
    from convoforge.agents.persona.context import PersonaContext
    from convoforge.agents.persona.run import winners_tuner

    tune = winners_tuner("local:smollm2-135m", tmp_path)
    spec, info = await tune([record("a", prompt=None)], 1, PersonaContext(tune_steps=3))
    assert (spec, info) == ("", {"rows": 0, "steps": 0})
    assert not any(tmp_path.iterdir())  # nothing trained, nothing written


def test_the_last_tuned_generator_is_kept_in_the_output(tmp_path):
    from convoforge.agents.persona.run import keep_tuned

    adapter = tmp_path / ".run" / "tuned-after-2"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    out = tmp_path / "out"
    out.mkdir()
    kept = keep_tuned(f"local:smollm2-135m+adapter={adapter}+bias=persona-generator", out)
    assert kept == out / "tuned-generator" and (kept / "adapter_config.json").read_text() == "{}"


def test_a_steps_rows_can_pass_one_at_a_time(tmp_path):
    from convoforge.training.lora import LoraSettings, common_args

    args = common_args(LoraSettings(batch_size=2, accumulation=2), tmp_path)
    assert (args["per_device_train_batch_size"], args["gradient_accumulation_steps"]) == (1, 2)
    with pytest.raises(ConvoforgeError, match="batch size 3 does not split into 2 passes"):
        LoraSettings(batch_size=3, accumulation=2)


def test_the_progress_line_says_whether_the_generator_was_tuned():
    from convoforge.app.persona_cli import tune_line

    assert tune_line({"rows": 0, "steps": 0}) == "generator not tuned: no winner yet"
    done = {"rows": 21, "steps": 20, "first_loss": 1.11, "last_loss": 0.98}
    assert tune_line(done) == "generator tuned on 21 winners (20 steps, loss 1.11 -> 0.98)"
