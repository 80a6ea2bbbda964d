"""Real runs: the persona graph with the embedded SmolLM2, and a tiny faithfulness tuning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from convoforge.datasets.records import read_dataset
from tests.test_persona_cli import cf, scripted_personas

pytestmark = pytest.mark.slow


def test_embedded_model_generates_a_dataset(tmp_path):
    out = tmp_path / "real"
    result = cf(
        "generate",
        "personas",
        "--iterations",
        "1",
        "--pairs",
        "1",
        "--candidates",
        "2",
        "--few-shot",
        "1",
        "--min-turns",
        "1",
        "--max-tokens",
        "160",
        "--persona-target",
        "1",
        "--query-steps",
        "0",
        "--no-contradictions",
        "--critic",
        "faithfulness",
        "--critic",
        "toxicity",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    data = read_dataset(out)
    rows = list(data["accepted"]) + list(data["rejected"])
    assert len(rows) == 2 and all(r["raw"] for r in rows)
    # on the embedded model the conversations come from convoforge's shipped generator, the expansion from plain
    assert all(
        r["generator_model"] == "local:smollm2-135m+adapter=persona-generator+bias=persona-generator" for r in rows
    )
    card = (out / "README.md").read_text()
    assert "persona expansion: `local:smollm2-135m`" in card and "## Quality without the critic" in card


def test_shipped_generator_loads_offline_from_the_package_and_changes_the_output():
    import convoforge
    from convoforge.agents.persona.context import PersonaContext
    from convoforge.agents.persona.stages import GenerationJob, generator_messages
    from convoforge.llm import GenParams, load_chat_model
    from convoforge.llm.local import adapter_chain

    (folder,) = adapter_chain("persona-generator")
    assert folder.is_relative_to(Path(convoforge.__file__).parent)
    assert (folder / "adapter_model.safetensors").stat().st_size < 8 * 2**20
    assert "Rebuild: `convoforge train generator" in (folder / "README.md").read_text()
    profiles = {"User 1": ["I am a nurse.", "I have two cats."], "User 2": ["I play the piano.", "I live in Ohio."]}
    messages = generator_messages(GenerationJob("p", 0, profiles), PersonaContext(min_turns=3, max_turns=4))
    params = GenParams(temperature=0.0, max_tokens=40)
    plain = load_chat_model("local:smollm2-135m").chat(messages, params).text
    tuned = load_chat_model("local:smollm2-135m+adapter=persona-generator").chat(messages, params).text
    assert tuned != plain and tuned.strip()


@pytest.mark.data
def test_discriminator_separates_broken_conversations_from_real_ones(data_dir, embedder):
    from convoforge.agents.persona.evaluate import clean_reference, discriminator
    from convoforge.app.persona_cli import reference_rows

    ref = reference_rows(data_dir / "spc" / "Synthetic-Persona-Chat_valid.csv", 320, 0)
    real, other = clean_reference(ref[:160]), clean_reference(ref[160:])  # real vs real, both sides clean
    assert 60 <= len(real) < 160 and 60 <= len(other) < 160
    looped = [{**r, "messages": [r["messages"][0], r["messages"][1]] * 4} for r in other]
    assert discriminator(embedder, real, looped)["accuracy"] >= 0.9
    assert discriminator(embedder, real, other)["accuracy"] <= 0.65


@pytest.mark.data
def test_train_faithfulness_few_steps_then_eval_with_the_scorer(tmp_path, data_dir):
    spc = data_dir / "spc" / "Synthetic-Persona-Chat_valid.csv"
    model = tmp_path / "faith"
    result = cf("train", "faithfulness", "--data", str(spc), "--out", str(model), "--steps", "3", "--batch-size", "8")
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 3 and summary["train_conversations"] > 500
    assert (model / "model.safetensors").is_file()
    again = cf("train", "faithfulness", "--data", str(spc), "--out", str(model), "--steps", "1")
    assert again.returncode == 2 and "exists" in again.stderr

    gen = tmp_path / "gen"
    scripted_personas(gen, iterations=1, pairs=2)
    report = cf(
        "eval", "personas", "--data", str(gen), "--reference", str(spc), "--limit", "40", "--scorer", str(model)
    )
    assert report.returncode == 0, report.stderr[-2000:]
    result = json.loads(report.stdout)
    ref = result["reference"]
    assert ref["conversations"] == 40 and 0.5 < ref["faithfulness_auc_pair"] <= 1.0
    assert {"degenerate_rate", "recitation_rate", "prompt_leak_rate", "turns_per_user"} <= set(ref)
    keys = {"discriminator_accuracy", "discriminator_by_embedding", "discriminator_by_statistics"}
    keys |= {"degenerate_rate", "recitation_rate", "prompt_leak_rate"}
    assert keys <= set(result["generated"])
    assert result["per_iteration"][0]["iteration"] == 0
    assert 0.0 <= ref["faithfulness_auc_attribute"] <= 1.0


@pytest.mark.data
def test_train_critics_heads_and_a_compressed_scorer_that_matches_its_full_model(tmp_path, data_dir):
    import numpy as np

    from convoforge.critics.trained import TURN_HEAD, load_head
    from convoforge.llm.embeddings import EMBEDDED_EMBEDDER, Embedder

    spc = data_dir / "spc" / "Synthetic-Persona-Chat_valid.csv"
    full = tmp_path / "faith"
    assert (
        cf(
            "train", "faithfulness", "--data", str(spc), "--out", str(full), "--steps", "4", "--batch-size", "8"
        ).returncode
        == 0
    )
    out = tmp_path / "experts"
    result = cf(
        "train", "critics", "--reference", str(spc), "--out", str(out), "--limit", "40", "--scorer-from", str(full)
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["train_conversations"] == 40 and set(summary["heads"]) == {
        f"quality_{d}" for d in ("depth", "coherency", "consistency", "diversity", "likability")
    }
    assert 0.5 < summary["faithfulness"]["energy_kept"] <= 1.0  # a 4-step change is not all low-rank
    card = json.loads((out / "faithfulness_lora" / "convoforge_card.json").read_text())
    assert card["command"].startswith("convoforge train critics") and 0 < card["threshold"] < 1
    assert load_head.__wrapped__(TURN_HEAD, str(out)).card["insults"]
    texts = ["I have two dogs.", "We walked the dogs in the park and then I cooked pasta for my kids."]
    compressed = Embedder(f"{EMBEDDED_EMBEDDER}+adapter={out / 'faithfulness_lora'}", cache=False).embed(texts)
    reference = Embedder(str(full), cache=False).embed(texts)
    assert np.min(np.sum(compressed * reference, axis=1)) > 0.99  # the SVD adapter reproduces the full model
    again = cf("train", "critics", "--reference", str(spc), "--out", str(out), "--no-faithfulness")
    assert again.returncode == 2 and "--force" in again.stderr
