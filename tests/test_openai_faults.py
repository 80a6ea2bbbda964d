"""The openai backend against a fault-injecting server: what is retried, what fails cleanly."""

from __future__ import annotations

import asyncio
import time
from typing import ClassVar

import pytest

from convoforge.errors import BackendError
from convoforge.llm.openai_backend import OpenAIChatModel
from tests.fault_server import FaultServer

RETRIES = 3


@pytest.fixture(scope="module")
def server():
    srv = FaultServer()
    yield srv
    srv.close()


def backend(server: FaultServer, model: str) -> OpenAIChatModel:
    return OpenAIChatModel(
        model,
        base_url=server.base_url,
        api_key="k",
        max_retries=RETRIES,
        timeout=0.5,
        backoff_base=0.01,
        backoff_max=0.05,
    )


async def test_ok_reports_usage(server):
    result = await backend(server, "ok").achat("hi")
    assert result.text == "fine"
    assert result.usage.total_tokens == 4


@pytest.mark.parametrize(("model", "attempts"), [("429-then-ok", 3), ("503-then-ok", 2), ("drop-then-ok", 2)])
async def test_transient_faults_are_retried_until_success(server, model, attempts):
    result = await backend(server, model).achat("hi")
    assert result.text == "fine"
    assert server.attempts[model] == attempts


@pytest.mark.parametrize(
    ("model", "message"),
    [("500", "failed after 4 attempts"), ("slow", "APITimeoutError"), ("drop", "cannot reach")],
)
async def test_persistent_faults_stop_after_the_retry_budget(server, model, message):
    llm = backend(server, model)
    with pytest.raises(BackendError, match=message):
        await llm.achat("hi")
    assert server.attempts[model] == RETRIES + 1
    assert llm.attempts == RETRIES + 1  # one retry layer: the client's own retries are off


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("401", "refused the API key"),
        ("404", "does not serve model '404'"),
        ("400", "answered 400"),
        ("badjson", "malformed response"),
    ],
)
async def test_non_retryable_answers_fail_at_once(server, model, message):
    with pytest.raises(BackendError, match=message):
        await backend(server, model).achat("hi")
    assert server.attempts[model] == 1


async def test_retry_after_header_is_honoured(server):
    llm = OpenAIChatModel("ok", base_url=server.base_url, backoff_base=0.5, backoff_max=30)

    class Response:
        headers: ClassVar[dict[str, str]] = {"retry-after": "0.25"}

    class Exc(Exception):
        response = Response()

    assert llm._delay(0, Exc()) == 0.25
    assert 0 < llm._delay(10, Exception()) <= llm.backoff_max * 1.5


def dead_url() -> str:
    from tests.conftest import free_port

    return f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there


async def test_a_dead_replica_is_taken_out_and_the_other_answers(server):
    dead = dead_url()
    llm = OpenAIChatModel(
        "ok", base_url=f"{dead},{server.base_url}", api_key="k", max_retries=RETRIES, timeout=0.5, cooldown=60
    )
    before = server.attempts["ok"]
    results = [await llm.achat("hi") for _ in range(6)]
    assert all(r.text == "fine" for r in results)
    assert server.attempts["ok"] - before == 6  # every request answered once by the live replica
    assert llm.failures == {f"{dead}: APIConnectionError": 1}  # tried once, then out for the cooldown
    assert llm.attempts == 7


async def test_a_replica_comes_back_after_its_cooldown(server):
    other = FaultServer()
    try:
        llm = OpenAIChatModel(
            "ok", base_url=f"{other.base_url},{server.base_url}", api_key="k", timeout=0.5, cooldown=0.2
        )
        llm._down_until[other.base_url] = time.monotonic() + 0.2
        await llm.achat("hi")
        assert other.attempts["ok"] == 0
        await asyncio.sleep(0.3)
        await llm.achat("hi")
        await llm.achat("hi")
        assert other.attempts["ok"] >= 1  # round-robin reaches it again
    finally:
        other.close()


async def test_all_replicas_down_fails_cleanly_after_the_retry_budget():
    llm = OpenAIChatModel(
        "ok", base_url=f"{dead_url()},{dead_url()}", api_key="k", max_retries=2, timeout=0.5, backoff_base=0.01
    )
    with pytest.raises(BackendError, match="cannot reach"):
        await llm.achat("hi")
    assert sum(llm.failures.values()) == 3


def test_seed_off_leaves_seed_out_of_the_request():
    from convoforge.llm import GenParams, load_chat_model
    from convoforge.llm.types import as_messages

    on = load_chat_model("openai:m", base_url="http://127.0.0.1:9/v1")
    off = load_chat_model("openai:m+seed=off", base_url="http://127.0.0.1:9/v1")
    params = GenParams(seed=3)
    assert on._kwargs(as_messages("hi"), params, 1)["seed"] == 3
    assert "seed" not in off._kwargs(as_messages("hi"), params, 1)
