"""`generate personas --ray`: shards on a local Ray instance give the local run's output byte for byte,
survive a killed worker, and resume after a SIGKILL of the driver without redoing a finished shard."""

from __future__ import annotations

import filecmp
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from convoforge.datasets.records import read_dataset
from tests.test_persona_cli import ROOT, cf

pytest.importorskip("ray", reason="the Ray path needs pip install 'convoforge[ray]'")
pytestmark = [pytest.mark.slow, pytest.mark.ray]

MODEL = ["--model", "scripted:tests.persona_fakes:stable_reply"]
PLAN = ["--iterations", "3", "--pairs", "4", "--candidates", "2", "--persona-target", "2", "--query-steps", "1"]
PLAN += ["--min-turns", "3"]
CONVERSATIONS = 3 * 4 * 2
DATA_FILES = ["accepted.jsonl", "rejected.jsonl", "accepted.parquet", "rejected.parquet"]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "p"
    result = cf(*MODEL, "generate", "personas", *PLAN, "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    return out


def same_data(a: Path, b: Path) -> None:
    for name in DATA_FILES:
        assert filecmp.cmp(a / name, b / name, shallow=False), name


@contextmanager
def started(out: Path, delay: float, *extra: str):
    """A Ray run in its own process group (killed with all it started when the test ends); its calls log."""
    log = out.parent / "calls"
    env = dict(os.environ, CONVOFORGE_TEST_CALLS=str(log), CONVOFORGE_TEST_DELAY=str(delay))
    args = [sys.executable, "-m", "convoforge", *MODEL, "generate", "personas", *PLAN, "--out", str(out), *extra]
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        yield proc, log, env
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def calls(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.is_file() else []


def wait_for(check, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_ray_run_writes_the_local_runs_output_byte_for_byte(local_run, tmp_path):
    out = tmp_path / "p"
    ray = ["--ray", "--workers", "2", "--shard-size", "3"]
    result = cf(*MODEL, "generate", "personas", *PLAN, "--out", str(out), *ray)
    assert result.returncode == 0, result.stderr[-2000:]
    same_data(local_run, out)
    assert "shard_size" in (out / "README.md").read_text()


def test_a_worker_killed_mid_run_is_restarted_and_nothing_is_lost_or_doubled(local_run, tmp_path):
    out = tmp_path / "p"
    with started(out, 0.4, "--ray", "--workers", "2", "--shard-size", "2") as (proc, log, _):
        wait_for(lambda: len([p for p in calls(log) if p != proc.pid]) >= 4)
        victim = next(p for p in calls(log) if p != proc.pid)
        os.kill(victim, signal.SIGKILL)
        _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-2000:]
    workers = set(calls(log)) - {proc.pid}
    assert victim in workers and len(workers) >= 3  # two workers, and the one Ray restarted
    same_data(local_run, out)


def test_sigkill_of_the_driver_then_resume_redoes_no_finished_shard(local_run, tmp_path):
    out = tmp_path / "p"
    with started(out, 0.2, "--ray", "--workers", "2", "--shard-size", "1") as (proc, log, env):
        for line in proc.stderr:
            if "iteration 0:" in line:
                break
        wait_for(lambda: len(calls(log)) >= 2 * 4 + 2)  # into iteration 1
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray instance it started
        proc.wait(30)
    before = len(calls(log))
    assert not out.exists() and before < CONVERSATIONS
    result = cf("generate", "personas", "--resume", "--out", str(out), env=env)  # settings (and --ray) of the run
    assert result.returncode == 0, result.stderr[-2000:]
    after = len(calls(log)) - before
    # iteration 0 (4 pairs x 2 candidates) finished before the kill and is never generated again
    assert after <= CONVERSATIONS - 2 * 4
    same_data(local_run, out)


def test_simulate_on_ray_writes_the_local_sessions(tmp_path):
    from tests.test_catalog import SAMPLE

    args = ["simulate", "--n", "8", "--simulator", "template", "--catalog", str(SAMPLE), "--max-turns", "3"]
    local, remote = tmp_path / "local", tmp_path / "ray"
    assert cf(*args, "--out", str(local)).returncode == 0
    result = cf(*args, "--out", str(remote), "--ray", "--workers", "2", "--shard-size", "3")
    assert result.returncode == 0, result.stderr[-2000:]
    a, b = read_dataset(local)["sessions"].to_list(), read_dataset(remote)["sessions"].to_list()
    assert len(a) == len(b) == 8 and [set(r) for r in a] == [set(r) for r in b]  # same format
    hidden = ["id", "profile", "targets", "liked_names", "patience", "verbosity", "knowledge"]
    assert [[r[k] for k in hidden] for r in a] == [[r[k] for k in hidden] for r in b]  # same sessions, same order
    # not byte for byte: MiniLM query vectors differ in the last float bits with the batch they were embedded in,
    # which can swap near-tied items; the first user turn, written before any retrieval, is the same
    assert [r["messages"][0]["content"] for r in a] == [r["messages"][0]["content"] for r in b]


def test_embedded_model_on_ray_workers(tmp_path):
    out = tmp_path / "p"
    plan = ["--iterations", "1", "--pairs", "2", "--candidates", "2", "--persona-target", "0", "--query-steps", "0"]
    plan += ["--min-turns", "2", "--max-tokens", "160", "--few-shot", "1"]
    result = cf("generate", "personas", *plan, "--out", str(out), "--ray", "--workers", "2", timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    data = read_dataset(out)
    rows = list(data["accepted"]) + list(data["rejected"])
    assert sorted(r["id"] for r in rows) == ["it0-p0-c0", "it0-p0-c1", "it0-p1-c0", "it0-p1-c1"]
    assert all(
        r["generator_model"] == "local:smollm2-135m+adapter=persona-generator+bias=persona-generator" for r in rows
    )
    assert all(r["messages"] or r["reason"] for r in rows)
