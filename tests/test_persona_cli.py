"""`convoforge generate personas` end to end: output, card, --force, resume after SIGKILL, plug-ins."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from convoforge.datasets.records import read_dataset

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
SMALL = [
    "--iterations",
    "2",
    "--pairs",
    "3",
    "--candidates",
    "2",
    "--persona-target",
    "2",
    "--query-steps",
    "1",
    "--min-turns",
    "3",
]


def cf(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "convoforge", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env
    )


def scripted_personas(out: Path, iterations: int = 1, pairs: int = 2) -> Path:
    """A small persona dataset from the scripted model (for tests that need one)."""
    made = cf(
        "--model",
        "scripted:tests.persona_fakes:pipeline_reply",
        "generate",
        "personas",
        "--iterations",
        str(iterations),
        "--pairs",
        str(pairs),
        "--candidates",
        "2",
        "--persona-target",
        "1",
        "--query-steps",
        "0",
        "--min-turns",
        "3",
        "--out",
        str(out),
    )
    assert made.returncode == 0, made.stderr[-1500:]
    return out


def test_generate_writes_dataset_card_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "personas"
    sampling = ["--temperature", "0.9", "--top-k", "20", "--frequency-penalty", "0.3"]
    result = cf(
        "--model",
        "scripted:tests.persona_fakes:pipeline_reply",
        "generate",
        "personas",
        *SMALL,
        *sampling,
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    data = read_dataset(out)
    assert set(data) == {"accepted", "rejected"}
    assert len(data["accepted"]) + len(data["rejected"]) == 2 * 3 * 2
    row = data["accepted"][0]
    assert row["messages"][0]["speaker"] == "User 1" and row["generator_model"].startswith("scripted:")
    assert {v["critic"] for v in row["verdicts"]} >= {"faithfulness", "toxicity", "quality_depth"}
    card = (out / "README.md").read_text()
    assert "## Per iteration" in card and "quality_depth" in card and "faithfulness" in card
    assert "## Quality without the critic" in card and "accepted, iteration 1" in card
    assert "| every candidate, all iterations |" in card and "| every candidate, iteration 1 |" in card
    assert '"temperature": 0.9,' in card and '"top_k": 20,' in card  # the run's sampling, as given
    assert '"frequency_penalty": 0.3,' in card and '"presence_penalty": 0.0,' in card
    assert (out / "accepted.jsonl").is_file() and (out / "rejected.parquet").is_file()
    assert "iteration" in result.stdout and "accepted" in result.stdout

    again = cf("--model", "scripted:echo", "generate", "personas", "--out", str(out))
    assert again.returncode == 2 and "exists; pass --force" in again.stderr
    before = (out / "README.md").read_text()
    assert before == card  # untouched

    evaluation = cf("eval", "personas", "--data", str(out))
    assert evaluation.returncode == 0, evaluation.stderr
    report = json.loads(evaluation.stdout)
    assert report["generated"]["conversations"] == len(data["accepted"])
    assert len(report["faithfulness_per_conversation"]) == len(data["accepted"])
    assert report["generated"]["degenerate_rate"] == 0.0 and len(report["per_iteration"]) == 2
    assert report["candidates"]["conversations"] >= report["generated"]["conversations"]
    every = report["candidates"]["per_iteration"]  # the generator's output per iteration, before the critic
    assert [q["iteration"] for q in every] == [0, 1]
    assert sum(q["conversations"] for q in every) == report["candidates"]["conversations"]

    versus = cf("eval", "personas", "--data", str(out), "--versus", str(out))
    assert versus.returncode == 0, versus.stderr
    paired = json.loads(versus.stdout)["versus"]["paired"]
    assert paired["pairs"] == 6 and paired["pairs_better"] == paired["pairs_worse"] == 0
    assert paired["acceptance"] == paired["acceptance_other"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seed", "/no/such/seeds.txt"], "no seed file"),
        (["--critic", "nope"], "unknown critic"),
        (["--min-turns", "9", "--max-turns", "3"], "above --max-turns"),
        (["--winner-share", "1", "--few-shot-nearest", "5"], "does not combine with --few-shot-nearest"),
        (["--resume"], "nothing to resume"),
        (["--model", "scripted:no.such.module:reply"], "cannot import scripted reply function"),
        (["--seed", "BINARY"], "is not UTF-8 text"),
    ],
)
def test_bad_input_fails_cleanly_and_creates_nothing(tmp_path, args, message):
    binary = tmp_path / "binary.csv"  # a seed file that is not text
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00" * 20)
    args = [str(binary) if a == "BINARY" else a for a in args]
    out = tmp_path / "o"
    model, args = (args[:2], args[2:]) if args[0] == "--model" else (["--model", "scripted:echo"], args)
    result = cf(*model, "generate", "personas", "--out", str(out), *args)
    assert result.returncode == 2 and message in result.stderr
    assert "persona expansion" not in result.stderr  # the error alone: no progress bars drawn before it
    assert list(tmp_path.iterdir()) == [binary]


def test_resume_after_sigkill_finishes_exactly_the_plan(tmp_path):
    out = tmp_path / "personas"
    args = [
        "--model",
        "scripted:tests.persona_fakes:slow_reply",
        "generate",
        "personas",
        "--iterations",
        "3",
        "--pairs",
        "4",
        "--candidates",
        "2",
        "--persona-target",
        "2",
        "--query-steps",
        "1",
        "--min-turns",
        "3",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "convoforge", *args],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 300
    for line in proc.stderr:
        if "iteration 0:" in line or time.monotonic() > deadline:
            break
    time.sleep(0.5)  # let it get into iteration 1
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    work = tmp_path / ".personas.convoforge-run"
    assert (work / "checkpoints.sqlite").is_file()

    result = cf("--model", "scripted:echo", "generate", "personas", "--resume", "--out", str(out))
    assert result.returncode == 0, result.stderr
    data = read_dataset(out)
    ids = [r["id"] for r in data["accepted"]] + [r["id"] for r in data["rejected"]]
    expected = {f"it{i}-p{p}-c{c}" for i in range(3) for p in range(4) for c in range(2)}
    assert len(ids) == len(set(ids)) == 24 and set(ids) == expected
    assert data["accepted"][0]["generator_model"] == "scripted:tests.persona_fakes:slow_reply"  # settings of the run
    assert not work.exists()


def test_entry_point_critic_is_listed_and_used(tmp_path):
    site = tmp_path / "site"
    pkg = site / "mycritics"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        textwrap.dedent('''
        from convoforge.critics import Critic, Verdict

        class Polite(Critic):
            """Drops conversations without a thank-you."""
            name = "polite"
            role = "filter"
            description = "needs a thank-you"

            def judge_one(self, candidate, llm):
                return Verdict(critic=self.name, passed="thank" in candidate.transcript().lower())
    ''')
    )
    dist = site / "mycritics-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mycritics\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[convoforge.critics]\npolite = mycritics:Polite\n")
    env = dict(os.environ, PYTHONPATH=f"{site}{os.pathsep}{ROOT}")
    listing = cf("critics", "list", env=env)
    assert listing.returncode == 0 and "polite" in listing.stdout and "mycritics" in listing.stdout
    out = tmp_path / "o"
    result = cf(
        "--model",
        "scripted:tests.persona_fakes:pipeline_reply",
        "generate",
        "personas",
        *SMALL,
        "--critic",
        "polite",
        "--critic",
        "toxicity",
        "--out",
        str(out),
        env=env,
    )
    assert result.returncode == 0, result.stderr
    data = read_dataset(out)
    assert data["accepted"].num_rows == 0  # the scripted conversation never says thank you
    reasons = {r["reason"].split(" (")[0] for r in data["rejected"]}
    # the scripted model's dull candidates ("Hi." / "Hi." / ...) stop at hygiene; every other one reaches the plug-in
    assert reasons == {"dropped by polite", "hygiene: small talk only"}, reasons


def test_add_critic_joins_the_default_mixture_and_an_unknown_one_is_a_one_line_error(tmp_path):
    from convoforge.critics import DEFAULT_CRITICS

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = tmp_path / "o"
    model = ["--model", "scripted:tests.persona_fakes:pipeline_reply", "generate", "personas", *SMALL]
    result = cf(*model, "--add-critic", "tests.persona_fakes:NoQuestions", "--out", str(out), env=env)
    assert result.returncode == 0, result.stderr
    data = read_dataset(out)
    judged = [r for split in ("accepted", "rejected") for r in data[split] if r["verdicts"][0]["error"] != "not judged"]
    assert judged and all([v["critic"] for v in r["verdicts"]] == [*DEFAULT_CRITICS, "no_questions"] for r in judged)
    assert "| no_questions | filter |" in (out / "README.md").read_text()
    bad = cf(*model, "--add-critic", "no_such_critic", "--out", str(tmp_path / "bad"), env=env)
    assert bad.returncode != 0 and "unknown critic 'no_such_critic'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()


def test_critic_option_sets_a_critic_s_setting_and_bad_ones_are_one_line_errors(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    model = ["--model", "scripted:tests.persona_fakes:pipeline_reply", "generate", "personas", *SMALL]
    out = tmp_path / "o"
    realism = ["--add-critic", "realism", "--critic-option", "realism.drop_share=0.85"]
    result = cf(*model, *realism, "--out", str(out), env=env)
    assert result.returncode == 0, result.stderr
    card = (out / "README.md").read_text()
    assert '"drop_share": 0.85' in card.split("## Settings")[0]  # what the realism critic learnt, on the card
    assert '"critic_options": {\n    "realism": {\n      "drop_share": 0.85' in card  # and the settings it ran with
    for option, error in [
        ("realism.drop_share", "expected NAME.SETTING=VALUE"),
        ("realism.drop_share=high", "takes a number, not 'high'"),
        ("realism.drop_share=1.5", "a share from 0 to below 1, not 1.5"),
        ("realism.no_such=1", "critic 'realism' has no setting 'no_such'"),
        ("realism.judge=1", "critic 'realism' has no setting 'judge'"),
        ("toxic.threshold=1", "settings for critic 'toxic', which this run does not have"),
    ]:
        bad = cf(*model, *realism[:3], option, "--out", str(tmp_path / "bad"), env=env)
        assert bad.returncode != 0 and error in bad.stderr, (option, bad.stderr)
        assert len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()
