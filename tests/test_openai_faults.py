"""The openai backend against a fault-injecting server: what is retried, what fails cleanly."""

from __future__ import annotations

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
