"""Whole `generate personas` runs through the openai backend while the server misbehaves: nothing lost."""

from __future__ import annotations

import json

import pytest

from convoforge.datasets.records import read_dataset
from tests.fault_server import FaultServer
from tests.test_persona_cli import SMALL, cf

pytestmark = pytest.mark.slow
PLANNED = 2 * 3 * 2  # iterations x pairs x candidates of SMALL


def backend_failures(out) -> dict:
    card = (out / "README.md").read_text()
    line = next(x for x in card.splitlines() if x.startswith("- stage log: "))
    return json.loads(line.removeprefix("- stage log: ")).get("backend failures (retried; this process)", {})


def check_complete(out) -> list[dict]:
    data = read_dataset(out)
    rows = list(data["accepted"]) + list(data["rejected"])
    assert len(rows) == PLANNED and len({r["id"] for r in rows}) == PLANNED  # none lost, none doubled
    return rows


def test_a_replica_killed_mid_run_and_the_run_finishes_through_the_other(tmp_path):
    dying, alive = FaultServer(die_after=15), FaultServer()
    try:
        out = tmp_path / "p"
        base = f"{dying.base_url},{alive.base_url}"
        result = cf("--model", "openai:persona", "--base-url", base, "generate", "personas", *SMALL, "--out", str(out))
        assert result.returncode == 0, result.stderr[-2000:]
        assert dying.served > 15 and alive.attempts["persona"] > 0
        rows = check_complete(out)
        assert any(r["messages"] for r in rows)
        failures = backend_failures(out)
        assert failures and all(dying.base_url in k for k in failures)
    finally:
        dying.close()
        alive.close()


def test_429_500_and_garbage_answers_during_a_whole_run_are_each_accounted_for(tmp_path):
    server = FaultServer()
    try:
        out = tmp_path / "p"
        result = cf(
            "--model",
            "openai:persona-flaky",
            "--base-url",
            server.base_url,
            "generate",
            "personas",
            *SMALL,
            "--out",
            str(out),
        )
        assert result.returncode == 0, result.stderr[-2000:]
        rows = check_complete(out)
        failures = backend_failures(out)
        assert sum(failures.values()) == sum(server.faults.values()) > 0
        assert {k.rsplit(": ", 1)[1] for k in failures} <= {
            "RateLimitError",
            "InternalServerError",
            "malformed response",
        }
        reasons = [r["reason"] for r in rows]
        assert all(r["messages"] or r["reason"] for r in rows)
        assert any(r["messages"] for r in rows), reasons
    finally:
        server.close()
