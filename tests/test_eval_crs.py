"""iEvaLM-style evaluation: recall, original and interactive modes, the CLI, realism."""

from __future__ import annotations

import json

import pytest

from convoforge.simulators.evaluate_crs import hits, paired
from tests.conftest import ROOT
from tests.test_catalog import SAMPLE
from tests.test_persona_cli import cf

TURNS = ROOT / "tests" / "fixtures" / "turns.jsonl"


def test_recall_counts_each_target():
    assert hits(["a", "b", "c"], ["b", "z"], [1, 3]) == [{1: False, 3: True}, {1: False, 3: False}]


def test_llm_roles_follow_the_measured_model():
    from convoforge.agents.recommender.agent import llm_roles

    class Named:
        def __init__(self, name: str) -> None:
            self.name = name

    assert llm_roles(Named("local:smollm2-135m")) == {"llm_manager": False, "llm_ranker": False}
    assert llm_roles(Named("openai:gpt-4o-mini")) == {"llm_manager": True, "llm_ranker": True}


def test_paired_mcnemar_counts_discordant_examples():
    ours = [{10: True}] * 8 + [{10: False}] + [{10: True}] * 5 + [{10: False}] * 3
    theirs = [{10: False}] * 8 + [{10: True}] + [{10: True}] * 5 + [{10: False}] * 3
    test = paired(ours, theirs, [10])["recall@10"]
    assert (test["only_this"], test["only_versus"]) == (8, 1)
    assert test["p"] == round(2 * (1 + 9) / 2**9, 4)  # exact two-sided binomial on 9 discordant examples
    assert paired(theirs, theirs, [10])["recall@10"] == {"only_this": 0, "only_versus": 0, "p": 1.0}


@pytest.mark.slow
def test_eval_crs_original_and_interactive():
    original = cf("eval", "crs", "--turns", str(TURNS), "--catalog", str(SAMPLE), "--mode", "original", "--k", "1,3")
    assert original.returncode == 0, original.stderr[-1500:]
    report = json.loads(original.stdout)
    assert report["turns"] == 3 and report["examples"] == 3  # unknown targets are skipped
    assert 0 <= report["recall@1"] <= report["recall@3"] <= 1
    interactive = cf(
        "eval",
        "crs",
        "--turns",
        str(TURNS),
        "--catalog",
        str(SAMPLE),
        "--mode",
        "interactive",
        "--k",
        "1,3",
        "--rounds",
        "3",
    )
    assert interactive.returncode == 0, interactive.stderr[-1500:]
    inter = json.loads(interactive.stdout)
    assert inter["recall@3"] >= report["recall@3"] and 0 <= inter["avg_rounds"] <= 3
    assert inter["simulator"] == "template (attribute mode)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mode", "both"], "--mode must be"),
        (["--k", "ten"], "--k must be integers"),
        (["--turns", "/no/turns.jsonl"], "no turns file"),
        (["--manager", "llm-ish"], "--manager must be llm or rules"),
        (["--ranker", "llm"], "add --agent"),
    ],
)
def test_eval_crs_bad_input(args, message):
    base = {"--turns": str(TURNS), "--catalog": str(SAMPLE)}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1]
    result = cf("eval", "crs", *[x for kv in base.items() for x in kv])
    assert result.returncode == 2 and message in result.stderr


@pytest.mark.slow
@pytest.mark.data
def test_realism_discriminator_on_real_redial_seekers(tmp_path, data_dir):
    out = tmp_path / "sessions"
    made = cf("simulate", "--n", "12", "--simulator", "template", "--out", str(out), "--catalog", str(SAMPLE))
    assert made.returncode == 0, made.stderr[-1500:]
    result = cf(
        "eval", "simulator", "--sessions", str(out), "--dialogs", str(data_dir / "redial" / "valid_dialogs.jsonl")
    )
    assert result.returncode == 0, result.stderr[-1500:]
    report = json.loads(result.stdout)
    assert report["real_turns"] == report["simulated_turns"] >= 12
    assert 0.5 <= report["discriminator_accuracy"] <= 1.0  # templates are easy to tell apart
    assert "ask_for_recommendations" in report["intents"]


@pytest.mark.slow
def test_eval_crs_whole_agent_beside_retrieval_and_learned_fusion_versus_rrf(tmp_path):
    from tests.test_fusion import toy_story_then_notebook

    model = ["--model", "scripted:tests.rec_fakes:recommender_reply"]
    agent = cf(*model, "eval", "crs", "--turns", str(TURNS), "--catalog", str(SAMPLE), "--k", "1,3", "--agent")
    assert agent.returncode == 0, agent.stderr[-1500:]
    report = json.loads(agent.stdout)
    assert report["agent"].startswith("whole graph") and report["versus"]["retrieval only"]
    assert report["examples"] == 3 and set(report["paired"]) == {"recall@1", "recall@3"}
    # the scripted manager asks for horror and its ranker puts The Shining first: the first turn's target
    assert report["recall@1"] >= 0.33
    assert report["agent"].endswith("manager llm, ranker llm")  # any model but the embedded one: the LLM's parts
    plain = cf(*model, "eval", "crs", "--turns", str(TURNS), "--catalog", str(SAMPLE), "--k", "1,3", "--agent",
               "--manager", "rules", "--ranker", "retrieval")  # fmt: skip
    assert plain.returncode == 0, plain.stderr[-1500:]
    rules = json.loads(plain.stdout)
    assert rules["agent"].endswith("manager rules, ranker retrieval order")
    # rules route every request turn to retrieval (the graph's query adds the request as a concept)
    assert rules["recall@3"] >= rules["versus"]["recall@3"] > 0
    train = toy_story_then_notebook(tmp_path)
    learned = cf("eval", "crs", "--turns", str(TURNS), "--catalog", str(SAMPLE), "--k", "1,3", "--train", str(train))
    assert learned.returncode == 0, learned.stderr[-1500:]
    assert json.loads(learned.stdout)["fusion"] == "learned (--train)"
    both = cf("eval", "crs", "--turns", str(TURNS), "--catalog", str(SAMPLE), "--versus-rrf")
    assert both.returncode == 2 and "needs --train" in both.stderr
