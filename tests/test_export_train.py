"""Export to TRL formats, and tiny real LoRA runs (SFT, reward, DPO) on the embedded SmolLM2."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from datasets import load_from_disk

from convoforge.datasets.export import conversation_prompt, held_out, pair_rows, pair_splits, sft_rows, thumbs_rows
from convoforge.errors import ModelSpecError
from convoforge.llm import load_chat_model
from tests.test_persona_cli import cf, scripted_personas


def record(rid, pair, messages, score, reason=""):
    return {
        "id": rid,
        "pair_id": pair,
        "profiles": {"User 1": ["I like tea."], "User 2": ["I have a dog."]},
        "messages": [{"speaker": s, "content": c} for s, c in messages],
        "reason": reason,
        "verdicts": [{"critic": "quality_depth", "valid": True, "score": score}],
    }


WIN = record("a", "p", [("User 1", "Hi"), ("User 2", "Hello"), ("User 1", "Tea?")], 1.0)
LOSE = record("b", "p", [("User 1", "Yo"), ("User 2", "Hey")], 0.25, "lost the vote")
BROKEN = record("c", "p", [], 0.0, "unparseable: too short")


def test_sft_rows_have_conversation_and_both_sides():
    rows = sft_rows([WIN])
    assert [r["kind"] for r in rows] == ["conversation", "side", "side"]
    assert rows[0]["messages"][-1] == {"role": "assistant", "content": "User 1: Hi\nUser 2: Hello\nUser 1: Tea?"}
    user1 = rows[1]["messages"]
    assert user1[0]["role"] == "system" and "I like tea." in user1[0]["content"]
    assert [m["role"] for m in user1[1:]] == ["assistant", "user", "assistant"]


def test_pairs_and_thumbs():
    (pair,) = pair_rows([WIN], [LOSE, BROKEN])
    assert pair["margin"] == 0.75 and pair["chosen"][0]["content"].startswith("User 1: Hi")
    assert pair["rejected"][0]["content"] == "User 1: Yo\nUser 2: Hey" and pair["prompt"][-1]["role"] == "user"
    thumbs = thumbs_rows([WIN], [LOSE, BROKEN])
    assert [t["label"] for t in thumbs] == [True, False]


@pytest.fixture(scope="module")
def persona_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "personas"
    scripted_personas(out, iterations=1, pairs=3)
    return out


@pytest.mark.slow
def test_export_cli_round_trips_and_rejects_bad_input(persona_data, tmp_path):
    for fmt, columns in [
        ("sft", {"messages"}),
        ("pairs", {"prompt", "chosen", "rejected", "margin"}),
        ("thumbs", {"prompt", "completion", "label"}),
    ]:
        out = tmp_path / fmt
        result = cf("export", "--data", str(persona_data), "--format", fmt, "--out", str(out))
        assert result.returncode == 0, result.stderr[-1500:]
        data = load_from_disk(str(out / "hf"))["train"]
        assert columns <= set(data.column_names) and len(data) > 0 and (out / "README.md").is_file()
    both = tmp_path / "both"  # two runs: pair ids restart per run, so each run's ids get a prefix
    result = cf(
        "export", "--data", str(persona_data), "--data", str(persona_data), "--format", "pairs", "--out", str(both)
    )
    assert result.returncode == 0, result.stderr[-1500:]
    one, two = (
        json.loads((d / "README.md").read_text().split("```json")[1].split("```")[0])
        for d in (tmp_path / "pairs", both)
    )
    assert two["rows"] == 2 * one["rows"]
    rows = [r for split in load_from_disk(str(both / "hf")).values() for r in split]
    assert {r["pair_id"].split("-")[0] for r in rows} == {"run0", "run1"}
    assert len({r["id"] for r in rows}) == len(rows)
    bad = cf("export", "--data", str(persona_data), "--format", "retrieval", "--out", str(tmp_path / "r"))
    assert bad.returncode == 2 and "no simulated sessions" in bad.stderr
    bad = cf("export", "--data", str(tmp_path / "nothing"), "--format", "sft", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "no dataset" in bad.stderr
    bad = cf("export", "--data", str(persona_data), "--format", "csv", "--out", str(tmp_path / "y"))
    assert bad.returncode == 2 and "unknown format" in bad.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "fmt", "extra"),
    [("sft", "sft", []), ("reward", "pairs", []), ("dpo", "pairs", []), ("dpo", "pairs", ["--sft-weight", "1"])],
)
def test_tiny_lora_runs(persona_data, tmp_path, kind, fmt, extra):
    data = tmp_path / fmt
    assert cf("export", "--data", str(persona_data), "--format", fmt, "--out", str(data)).returncode == 0
    out = tmp_path / f"model-{kind}"
    args = ["--steps", "4", "--lr", "1e-3", "--batch-size", "2", *extra]
    result = cf("train", kind, "--data", str(data), "--out", str(out), *args)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((out / "convoforge_training.json").read_text())
    assert summary["steps"] == 4 and (out / "adapter_model.safetensors").is_file()
    assert summary["sft_weight"] == (1.0 if extra else 0.0)
    assert summary["last_loss"] < summary["first_loss"] or kind == "reward"
    from safetensors.torch import load_file

    weights = load_file(str(out / "adapter_model.safetensors"))
    lora_b = [v for k, v in weights.items() if "lora_B" in k]
    assert lora_b and any(float(v.abs().sum()) > 0 for v in lora_b)  # B starts at zero: training moved it
    if kind == "sft":
        prompt = "Write a conversation between two friends."
        base = load_chat_model("local:smollm2-135m").chat(prompt, max_tokens=24, temperature=0).text
        tuned = load_chat_model(f"local:smollm2-135m+adapter={out}").chat(prompt, max_tokens=24, temperature=0).text
        assert tuned != base
    again = cf("train", kind, "--data", str(data), "--out", str(out), "--steps", "1")
    assert again.returncode == 2 and "exists" in again.stderr


@pytest.mark.slow
def test_dpo_after_sft_trains_on_top_of_the_sft_adapter_and_loads_as_one_chain(persona_data, tmp_path):
    from convoforge.llm.local import adapter_chain

    for fmt in ("sft", "pairs"):
        assert cf("export", "--data", str(persona_data), "--format", fmt, "--out", str(tmp_path / fmt)).returncode == 0
    sft, dpo = tmp_path / "sft-model", tmp_path / "dpo-model"
    args = ["--steps", "3", "--lr", "1e-3", "--batch-size", "2"]
    assert cf("train", "sft", "--data", str(tmp_path / "sft"), "--out", str(sft), *args).returncode == 0
    on_sft = ["--base", f"local:smollm2-135m+adapter={sft.resolve()}"]
    result = cf("train", "dpo", "--data", str(tmp_path / "pairs"), "--out", str(dpo), *args, *on_sft)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((dpo / "convoforge_training.json").read_text())["base"] == on_sft[1]
    assert adapter_chain(str(dpo)) == [sft.resolve(), dpo.resolve()]
    prompt = "Write a conversation between two friends."
    alone = load_chat_model(f"local:smollm2-135m+adapter={sft}").chat(prompt, max_tokens=24, temperature=0).text
    both = load_chat_model(f"local:smollm2-135m+adapter={dpo}").chat(prompt, max_tokens=24, temperature=0).text
    assert both != alone  # the DPO adapter is applied after the SFT one it was trained on
    missing = ["--base", f"local:smollm2-135m+adapter={tmp_path / 'none'}"]
    bad = cf("train", "dpo", "--data", str(tmp_path / "pairs"), "--out", str(tmp_path / "x"), *args, *missing)
    assert bad.returncode == 2 and "no PEFT adapter" in bad.stderr


@pytest.mark.slow
def test_generate_samples_judges_the_policy_on_train_pairs_into_on_policy_pairs(persona_data, tmp_path):
    from convoforge.datasets.records import read_dataset

    thumbs = tmp_path / "thumbs"
    assert cf("export", "--data", str(persona_data), "--format", "thumbs", "--out", str(thumbs)).returncode == 0
    train_pairs = set(load_from_disk(str(thumbs / "hf"))["train"]["pair_id"])
    good = "\n".join(
        [
            "User 1: Hi, I like tea in the morning.",
            "User 2: I have a dog who loves long walks.",
            "User 1: What breed is your dog?",
            "User 2: A beagle, he is very loud.",
            "User 1: I would love to meet him some day.",
            "User 2: Come by the park on Sunday then.",
        ]
    )
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps([good, "User 1: Hi.\nUser 2: Hey."]))  # each request: one good, one too short
    out = tmp_path / "samples"
    args = ["--model", f"scripted:{replies}", "generate", "samples", "--data", str(thumbs), "--out", str(out)]
    args += ["--samples", "2", "--critic", "toxicity", "--min-turns", "3"]
    made = cf(*args)
    assert made.returncode == 0, made.stderr[-1500:]
    summary = json.loads(made.stdout)
    assert summary["pairs"] == len(train_pairs) and summary["candidates"] == 2 * len(train_pairs)
    assert summary["parse_rate"] == summary["acceptance"] == 0.5
    assert summary["pairs_with_winner_and_loser"] == len(train_pairs)
    samples = read_dataset(out)
    assert {r["pair_id"] for r in samples["accepted"]} == train_pairs  # the export's pair ids, so its split holds
    assert all(r["reason"].startswith("unparseable: too short") for r in samples["rejected"])
    assert "toxicity" in (out / "README.md").read_text()
    pairs = tmp_path / "pairs"
    assert cf("export", "--data", str(out), "--format", "pairs", "--out", str(pairs)).returncode == 0
    rows = read_dataset(pairs)["train"]  # all train: the sampled pairs were the export's train pairs
    assert len(rows) == len(train_pairs) and all(r["chosen"][0]["content"] == good for r in rows)
    again = cf(*args)
    assert again.returncode == 2 and "exists" in again.stderr
    (tmp_path / "terms.txt").write_text("beagle\n")  # a lexicon that calls the good conversation toxic
    strict = [str(tmp_path / "strict") if a == str(out) else a for a in args]
    made = cf(*strict, "--critic-option", f"toxicity.terms_file={tmp_path / 'terms.txt'}")
    assert made.returncode == 0, made.stderr[-1500:]
    assert json.loads(made.stdout)["acceptance"] == 0
    assert "critic_options" in (tmp_path / "strict" / "README.md").read_text()
    run = cf(*args[:5], str(persona_data), "--out", str(tmp_path / "x"))  # a persona run, not an export
    assert run.returncode == 2 and "not an exported training set" in run.stderr


def test_adapter_chain_follows_training_records_and_refuses_loops(tmp_path):
    from convoforge.llm.local import adapter_chain, adapter_path

    def adapter(name: str, base: str) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "adapter_config.json").write_text("{}")
        (folder / "convoforge_training.json").write_text(json.dumps({"base": base}))
        return folder

    a = adapter("a", "local:smollm2-135m")
    b = adapter("b", f"local:smollm2-135m+adapter={a}")
    assert adapter_chain(str(b)) == [a.resolve(), b.resolve()]
    (a / "convoforge_training.json").write_text(json.dumps({"base": f"local:smollm2-135m+adapter={b}"}))
    with pytest.raises(ModelSpecError, match="loop"):
        adapter_chain(str(b))
    orphan = adapter("c", f"local:smollm2-135m+adapter={tmp_path / 'gone'}")
    with pytest.raises(ModelSpecError, match="no PEFT adapter"):
        adapter_chain(str(orphan))
    on_shipped = adapter("d", "local:smollm2-135m+adapter=persona-generator")  # a shipped parent, by its name
    assert adapter_chain(str(on_shipped)) == [adapter_path("persona-generator").resolve(), on_shipped.resolve()]


def test_train_rejects_wrong_data(tmp_path):
    result = cf("train", "sft", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--steps", "1")
    assert result.returncode == 2 and "not an exported training set" in result.stderr


def test_identical_candidates_make_no_pair():
    twin = {**LOSE, "messages": WIN["messages"], "id": "t"}
    assert pair_rows([WIN], [twin]) == []


def test_a_tied_vote_makes_no_pair_but_a_dropped_loser_does():
    unscored = {**WIN, "verdicts": []}  # no quality expert gave a valid score: the winner was the first alive
    tie = {**LOSE, "verdicts": [], "reason": "lost the vote (0 vs 0 votes)"}
    dropped = {**LOSE, "id": "d", "verdicts": [], "reason": "dropped by faithfulness"}
    assert [r["rejected_reason"] for r in pair_rows([unscored], [tie, dropped])] == ["dropped by faithfulness"]


def test_records_keep_the_prompt_they_were_written_in_and_exports_train_in_it(persona_data):
    from convoforge.datasets.records import read_dataset

    data = read_dataset(persona_data)
    accepted = list(data["accepted"])
    assert accepted and all("Now write a new conversation." in json.loads(r["prompt"])[-1]["content"] for r in accepted)
    (sft,) = [r for r in sft_rows(accepted[:1], own=True) if r["kind"] == "conversation"]
    assert sft["messages"][:-1] == json.loads(accepted[0]["prompt"])  # the generator's own prompt, not a generic one
    (generic,) = [r for r in sft_rows(accepted[:1]) if r["kind"] == "conversation"]
    old = {k: v for k, v in accepted[0].items() if k != "prompt"}  # a record written before records kept prompts
    (old_row,) = [r for r in sft_rows([old], own=True) if r["kind"] == "conversation"]
    assert generic["messages"][:-1] == old_row["messages"][:-1] == conversation_prompt(accepted[0]["profiles"])


def test_generate_samples_on_an_spc_csv_samples_its_train_pairs_in_the_generators_prompt(tmp_path):
    from convoforge.critics.faithfulness_data import split_of
    from convoforge.datasets.records import read_dataset
    from convoforge.datasets.spc import read_spc
    from convoforge.training.sampling import sample_run
    from tests.test_critics_eval import fixture_rows, write_spc

    spc = tmp_path / "spc.csv"
    write_spc(spc, fixture_rows(20))
    train = [r for r in read_spc(spc) if split_of(r) == "train"]
    good = "\n".join(f"User {1 + i % 2}: Turn number {i} about something else entirely." for i in range(6))
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps([good, "User 1: Hi.\nUser 2: Hey."]))
    out = tmp_path / "samples"
    summary = sample_run(spc, f"scripted:{replies}", out, ["toxicity"], f"scripted:{replies}", samples=2, limit=3)
    assert summary["pairs"] == 3 and summary["candidates"] == 6 and summary["pairs_with_winner_and_loser"] == 3
    rows = read_dataset(out)
    profiles = [r["profiles"] for r in train]
    for r in list(rows["accepted"]) + list(rows["rejected"]):
        assert r["profiles"] in profiles  # train persona pairs only
        task = json.loads(r["prompt"])[-1]["content"]
        assert "Now write a new conversation." in task and " ".join(r["profiles"]["User 1"]) in task
        assert "more than 2 turns and less than 8 turns" in task  # the run's bounds: --min-turns 3, max 7
    (pair, *_) = pair_rows(list(rows["accepted"]), list(rows["rejected"]), own=True)
    assert pair["prompt"] == json.loads(rows["accepted"][0]["prompt"]) and pair["chosen"][0]["content"] == good


def test_sampling_gives_each_persona_pair_its_own_seed_from_the_run_seed():
    from convoforge.agents.persona.context import PersonaContext
    from convoforge.llm.scripted import ScriptedChatModel
    from convoforge.training.sampling import generate

    prompts = [[{"role": "user", "content": f"pair {i}"}] for i in range(4)]
    rows = [{"pair_id": f"p{i}", "profiles": {}, "prompt": prompt} for i, prompt in enumerate(prompts)]

    def seeds(run_seed: int, order: list[dict]) -> dict[str, int]:
        llm = ScriptedChatModel(["User 1: Hi.\nUser 2: Hey."])
        generate(order, llm, 2, PersonaContext(), 64, run_seed)
        return {msgs[-1].content.split()[-1]: p.seed for msgs, p in zip(llm.requests, llm.params, strict=True)}

    first = seeds(5, rows)
    assert len(set(first.values())) == 4  # no two pairs share their random draws
    assert seeds(5, rows[::-1]) == first  # a pair's seed is its own, wherever it stands (another policy's run)
    assert not set(seeds(6, rows).values()) & set(first.values())  # another run seed samples otherwise


def test_pair_splits_keep_a_rows_own_split_and_hold_out_the_rest_by_persona_pair():
    pairs = [f"p{i}" for i in range(40)]
    rows = [{"id": f"{p}-{k}", "pair_id": p, "text": "x"} for p in pairs for k in range(2)]
    rows.append({"id": "own", "pair_id": next(p for p in pairs if not held_out(p)), "text": "y", "split": "test"})
    splits = pair_splits(rows)
    test_pairs = set(splits["test"]["pair_id"])
    assert test_pairs == {p for p in pairs if held_out(p)} | {rows[-1]["pair_id"]}
    assert 0 < len(test_pairs) < len(pairs) and "own" in splits["test"]["id"]
    assert not set(splits["train"]["pair_id"]) & {p for p in pairs if held_out(p)}  # a pair never on both sides
    assert len(splits["train"]) + len(splits["test"]) == len(rows) and "split" not in splits["train"].column_names
    lone = pair_splits([{"id": "a", "pair_id": "q", "text": "z", "split": "train"}])
    assert len(lone["test"]) == 0 and lone["test"].column_names == lone["train"].column_names


def test_real_pairs_prefer_the_real_spc_conversation_to_each_of_the_policys_samples(tmp_path):
    from convoforge.critics.faithfulness_data import split_of
    from convoforge.datasets.records import read_dataset
    from convoforge.datasets.spc import read_spc
    from convoforge.errors import ConvoforgeError
    from convoforge.training.generator import Rounds, round_pairs
    from convoforge.training.sampling import real_pairs
    from tests.test_critics_eval import fixture_rows, write_spc

    spc = tmp_path / "spc.csv"
    write_spc(spc, fixture_rows(30))
    train = {json.dumps(r["profiles"]): r["turns"] for r in read_spc(spc) if split_of(r) == "train"}
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps(["User 1: Hi.\nUser 2: Hi.\nUser 1: Hi.", ""]))  # the second writes nothing
    out = tmp_path / "pairs"
    found = round_pairs(spc, f"scripted:{replies}", out, Rounds(pairs=6, samples=2, kind="real"), seed=0)
    rows = read_dataset(out / "pairs")
    every = list(rows["train"]) + list(rows["test"])
    assert found["preference_pairs"] == len(rows["train"]) >= 1 and len(every) == 6  # empty samples are skipped
    for row in every:
        task = row["prompt"][-1]["content"]
        assert "Now write a new conversation." in task and "more than 2 turns and less than 8 turns" in task
        turns = train[json.dumps(row["profiles"])]  # a train persona pair, in the prompt
        assert " ".join(row["profiles"]["User 2"]) in task
        real = row["chosen"][0]["content"].split("\n")
        assert real == [f"{s}: {t}" for s, t in turns[: len(real)]] and len(real) >= 6  # its real start, 3+ a user
        assert row["rejected"][0]["content"] == "User 1: Hi.\nUser 2: Hi.\nUser 1: Hi."
    with pytest.raises(ConvoforgeError, match="exists"):  # what the user has is kept
        real_pairs(spc, f"scripted:{replies}", out / "pairs")
    with pytest.raises(ConvoforgeError, match="Synthetic-Persona-Chat CSV"):
        real_pairs(out / "pairs", f"scripted:{replies}", tmp_path / "x")


def test_a_critics_round_is_judged_by_the_critics_and_settings_given(tmp_path):
    from convoforge.errors import ConvoforgeError
    from convoforge.training.generator import Rounds, round_pairs
    from tests.test_critics_eval import fixture_rows, write_spc

    spc = tmp_path / "spc.csv"
    write_spc(spc, fixture_rows(30))
    good = "\n".join(f"User {1 + i % 2}: Turn number {i} about something else entirely." for i in range(6))
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps([good, "User 1: Hi.\nUser 2: Hey."]))  # each pair: one good, one too short
    policy = f"scripted:{replies}"
    plain = round_pairs(spc, policy, tmp_path / "plain", Rounds(pairs=4, samples=2, critics=("toxicity",)), seed=0)
    assert plain["acceptance"] == 0.5 and plain["preference_pairs"] >= 1
    (tmp_path / "terms.txt").write_text("something\n")  # a lexicon that calls the good conversation toxic
    options = {"toxicity": {"terms_file": str(tmp_path / "terms.txt")}}
    strict = Rounds(pairs=4, samples=2, critics=("toxicity",), critic_options=options)
    with pytest.raises(ConvoforgeError, match="yields no pairs rows"):  # nothing the critics accept to prefer
        round_pairs(spc, policy, tmp_path / "strict", strict, seed=0)
    card = (tmp_path / "strict" / "samples" / "README.md").read_text()
    assert "terms.txt" in card and "| toxicity | filter |" in card and "| quality_" not in card  # only it judged


def test_train_generators_card_command_restates_the_rounds_critics_and_settings(tmp_path, monkeypatch):
    import shlex

    from typer.testing import CliRunner

    import convoforge.training.generator as generator
    from convoforge.app.cli import _register, app

    seen = []
    monkeypatch.setattr(generator, "train_generator", lambda *args, **kwargs: seen.append(kwargs["rounds"]) or {})
    _register()
    args = ["train", "generator", "--data", "spc.csv", "--out", "never", "--rounds", "1", "--critic", "toxicity"]
    args += ["--add-critic", "faithfulness_llm"]
    args += ["--critic-option", "faithfulness.threshold=0.3", "--critic-option", "faithfulness.embedder=my model"]
    args += ["--critic-option", 'toxicity.terms_file="5"']  # text that would read as JSON stays text, quoted
    assert CliRunner().invoke(app, args).exit_code == 0
    first = seen[0]
    assert first.critics == ("toxicity", "faithfulness_llm")
    assert first.critic_options == {
        "faithfulness": {"threshold": 0.3, "embedder": "my model"},
        "toxicity": {"terms_file": "5"},
    }
    assert "`faithfulness_llm`" in generator.critics_text(first) and "0.3" in generator.critics_text(first)
    flags = shlex.split(generator.option_flags(first))
    assert CliRunner().invoke(app, [*args[:8], *flags]).exit_code == 0  # its --critic flags name them all
    assert seen[1] == first  # the card's flags rebuild the same critics and settings
    assert generator.critics_text(generator.Rounds()) == "the built-in experts" and not generator.option_flags(
        generator.Rounds()
    )


def test_drop_leaky_keeps_spcs_placeholder_conversations_out_of_training_but_not_out_of_the_test_split(tmp_path):
    from convoforge.critics.faithfulness_data import split_of
    from convoforge.datasets.records import read_dataset
    from convoforge.training.generator import build_export
    from convoforge.training.sampling import real_pairs, sample_run
    from tests.test_critics_eval import fixture_rows, write_spc

    rows = fixture_rows(40)
    for r in rows[::2]:  # every other conversation opens with the source generator's placeholder, as a third of SPC
        r["turns"][0][1] = "Hi, I'm [User 1's name]. " + r["turns"][0][1]
    spc = tmp_path / "spc.csv"
    write_spc(spc, rows)
    placeholder = "[User 1's name]"
    leaky_train = sum(1 for r in rows[::2] if split_of(r) == "train")
    kept, dropped = (build_export(spc, tmp_path / name, drop_leaky=d) for name, d in (("all", False), ("clean", True)))
    assert kept["train_rows"] - dropped["train_rows"] == leaky_train > 0 and kept["test_rows"] == dropped["test_rows"]
    clean = read_dataset(tmp_path / "clean")
    train_text = json.dumps(list(clean["train"]["messages"]))
    assert placeholder not in train_text  # neither an answer nor a few-shot example
    assert placeholder in json.dumps(list(clean["test"]["messages"]))  # the held-out part stays whole
    assert placeholder in json.dumps(list(read_dataset(tmp_path / "all")["train"]["messages"]))
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps(["User 1: Hi.\nUser 2: Hi.\nUser 1: Hi."]))
    pairs = tmp_path / "pairs"
    real_pairs(spc, f"scripted:{replies}", pairs, samples=1, drop_leaky=True)
    made = read_dataset(pairs)
    assert len(made["train"]) and placeholder not in json.dumps([list(made[k]) for k in made])
    sample_run(spc, f"scripted:{replies}", tmp_path / "samples", ["toxicity"], f"scripted:{replies}", drop_leaky=True)
    sampled = read_dataset(tmp_path / "samples")
    assert len(sampled["rejected"]) and placeholder not in json.dumps([list(sampled[k]) for k in sampled])


@pytest.mark.slow
def test_merged_adapters_equal_the_chain_they_merge(tmp_path):
    import shutil

    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM

    from convoforge.llm.local import adapter_path, resolve_weights, with_adapter
    from convoforge.training.generator import merge_adapters

    first = adapter_path("persona-generator")
    second = tmp_path / "second"  # a different LoRA trained "on top of" the first: its factors shuffled and scaled
    second.mkdir()
    shutil.copy(first / "adapter_config.json", second / "adapter_config.json")
    gen = torch.Generator().manual_seed(0)
    tensors = {
        k: (v.float() * 3)[torch.randperm(v.shape[0], generator=gen)]
        for k, v in load_file(first / "adapter_model.safetensors").items()
    }
    save_file({k: v.half().contiguous() for k, v in tensors.items()}, second / "adapter_model.safetensors")
    (second / "convoforge_training.json").write_text(json.dumps({"base": f"local:smollm2-135m+adapter={first}"}))
    merge_adapters(first, second, tmp_path / "merged")
    rank = json.loads((first / "adapter_config.json").read_text())["r"]
    assert json.loads((tmp_path / "merged" / "adapter_config.json").read_text())["r"] == 2 * rank  # side by side
    weights = resolve_weights("smollm2-135m")
    ids = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]])

    def logits(adapter: Path | None) -> torch.Tensor:
        model = AutoModelForCausalLM.from_pretrained(weights, torch_dtype=torch.float32)
        model = with_adapter(model, str(adapter)) if adapter else model
        with torch.no_grad():
            return model(ids).logits

    chain, merged, plain = logits(second), logits(tmp_path / "merged"), logits(None)
    assert (chain - plain).abs().max() > 0.5  # the adapters move the output
    assert torch.allclose(chain, merged, atol=2e-2)  # and the single merged adapter moves it the same way
    cut = merge_adapters(first, first, tmp_path / "twice", rank=rank)  # twice the first: rank r, so a cut is exact
    assert cut["rank"] == rank and cut["dropped"] < 1e-5
    assert merge_adapters(first, first, tmp_path / "twice-full")["rank"] == 2 * rank
    twice, full = logits(tmp_path / "twice"), logits(tmp_path / "twice-full")
    assert (twice - full).abs().max() < 0.01 * (full - plain).abs().max()  # equal up to float16 rounding
    lossy = merge_adapters(first, second, tmp_path / "lossy", rank=rank // 2)
    assert lossy["rank"] == rank // 2 and lossy["dropped"] > 0  # a real cut says what it dropped


@pytest.mark.slow
def test_train_generator_rounds_sample_judge_train_dpo_on_top_and_ship_one_merged_adapter(tmp_path, monkeypatch):
    import convoforge.training.sampling as sampling
    from convoforge.training.generator import Rounds, train_generator
    from convoforge.training.lora import LoraSettings
    from tests.test_critics_eval import fixture_rows, write_spc

    spc = tmp_path / "spc.csv"
    write_spc(spc, fixture_rows(20))
    good = "\n".join(f"User {1 + i % 2}: Turn number {i} about something else entirely." for i in range(6))
    looped = "\n".join(
        f"User {1 + i % 2}: Write each turn on its own line, speaker {i}." for i in range(6)
    )  # parses, then fails hygiene
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps([good, looped]))
    real, real_pairs = sampling.sample_run, sampling.real_pairs
    seen, asked = [], []

    def scripted_policy(data, model, *args, **kwargs):  # samples and critics scripted; export, DPO, merge real
        seen.append(model)
        asked.append(kwargs)
        return real(data, f"scripted:{replies}", args[0], ["toxicity"], f"scripted:{replies}", *args[3:], **kwargs)

    def scripted_real(data, model, *args, **kwargs):
        seen.append(model)
        asked.append(kwargs | {"pairs": args[2]})
        return real_pairs(data, f"scripted:{replies}", *args, **kwargs)

    monkeypatch.setattr(sampling, "sample_run", scripted_policy)
    monkeypatch.setattr(sampling, "real_pairs", scripted_real)
    settings = LoraSettings(steps=1, batch_size=1, max_length=1024)
    out = tmp_path / "generator"
    plan = Rounds(count=2, pairs="3,4", samples=2, steps=1, kind="critics,real", drop_leaky_rounds="2")
    with warnings.catch_warnings(record=True) as caught:  # TRL samples through PEFT while it trains
        warnings.simplefilter("always")
        result = train_generator(spc, out, settings, rounds=plan, test_limit=4)
    assert not [str(w.message) for w in caught if "is_gradient_checkpointing" in str(w.message)]
    assert len(seen) == 2 and all("+adapter=" in m for m in seen)  # each round sampled the adapter so far
    assert asked[0]["limit"] == 3 and asked[1]["pairs"] == 4  # a comma list is taken round by round
    assert asked[0]["seed"] == 0 and asked[1]["seed"] == 1  # each round draws its own persona pairs
    assert not asked[0]["drop_leaky"] and asked[1]["drop_leaky"]  # only round 2 leaves placeholders out
    assert seen[0] != seen[1]  # the second round sampled the first round's merged adapter
    critics, spin = result["rounds"]
    assert critics["kind"] == "critics" and critics["acceptance"] == 0.5 and critics["preference_pairs"] >= 1
    assert spin["kind"] == "real" and "acceptance" not in spin and spin["preference_pairs"] >= 1
    assert critics["rank"] == 32 and spin["rank"] == 32 and spin["energy_dropped"] >= 0  # 48 cut back to 32
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 32  # SFT and two DPOs in one LoRA
    record = json.loads((out / "convoforge_training.json").read_text())
    assert record["base"] == "local:smollm2-135m" and record["kind"] == "sft+dpo+spin"
    card = (out / "README.md").read_text()
    assert "On-policy DPO rounds: 2 (critics,real)" in card
    assert "round 1 (critics, 3 pairs x 2 samples)" in card
    assert "round 2 (real, 4 pairs x 2 samples, placeholder conversations left out)" in card
    assert "--rounds 2 --round-pairs 3,4 " in card and "--round-kind critics,real" in card
    assert "--drop-leaky-rounds 2 --force" in card
    assert not list(tmp_path.glob(".generator.*"))  # no work folder left behind


def test_shipped_generator_card_states_a_rebuild_command_that_parses_into_its_recorded_rounds(monkeypatch):
    import shlex

    from typer.testing import CliRunner

    import convoforge.training.generator as generator
    from convoforge.app.cli import _register, app

    folder = generator.shipped_dir()
    record = json.loads((folder / "convoforge_training.json").read_text())
    assert f"Rebuild: `{record['command']}`" in (folder / "README.md").read_text()
    seen = {}
    monkeypatch.setattr(generator, "train_generator", lambda *args, **kwargs: seen.update(kwargs) or {})
    _register()
    result = CliRunner().invoke(app, shlex.split(record["command"])[1:])
    assert result.exit_code == 0, result.output
    plan = seen["rounds"]
    stated = [(plan.at(k).kind, plan.at(k).pairs, plan.at(k).samples, plan.at(k).drop_leaky) for k in range(plan.count)]
    assert stated == [(r["kind"], r["pairs"], r["samples"], r["drop_leaky"]) for r in record["rounds"]]


def test_loading_the_shipped_generator_raises_no_library_warning():
    """PEFT reads transformers' deprecated `is_gradient_checkpointing`; the main job must not print that at a user."""
    import warnings

    import torch
    from transformers import AutoModelForCausalLM

    from convoforge.llm.local import resolve_weights, with_adapter

    model = AutoModelForCausalLM.from_pretrained(resolve_weights("smollm2-135m"), torch_dtype=torch.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with_adapter(model, "persona-generator")
    assert not [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
