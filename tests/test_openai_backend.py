"""The openai backend against a real OpenAI-compatible server on 127.0.0.1 (`convoforge serve`)."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel, Field

from convoforge.errors import BackendError
from convoforge.llm import GenParams, astructured, load_chat_model


class Score(BaseModel):
    score: int = Field(ge=1, le=5)
    reason: str = Field("", max_length=80)


async def test_against_served_scripted_model(serve):
    base = serve("scripted:echo")
    llm = load_chat_model("openai:scripted:echo", base_url=base)
    result = await llm.achat("ping pong", GenParams(n=2, max_tokens=10))
    assert result.texts == ["ping pong", "ping pong"]
    assert result.usage.prompt_tokens == 2
    pieces = [p async for p in llm.astream("streamed words")]
    assert "".join(pieces) == "streamed words"
    with pytest.raises(BackendError, match="does not serve model"):
        await load_chat_model("openai:other", base_url=base).achat("x")
    many = await asyncio.gather(*[llm.achat(f"m{i}") for i in range(20)])
    assert [r.text for r in many] == [f"m{i}" for i in range(20)]
    await llm.aclose()


@pytest.mark.slow
async def test_against_served_local_model(serve):
    base = serve("local:smollm2-135m")
    llm = load_chat_model("openai:local:smollm2-135m", base_url=base)
    result = await llm.achat("What is the capital of France?", GenParams(max_tokens=12, temperature=0))
    assert "Paris" in result.text and result.usage.completion_tokens > 0
    pieces = [p async for p in llm.astream("Tell me about dogs.", GenParams(max_tokens=16, temperature=0))]
    assert len(pieces) > 1 and "".join(pieces).strip()
    results = await asyncio.gather(*[llm.achat(f"Say the number {i}.", max_tokens=6) for i in range(4)])
    assert all(r.text for r in results)
    # JSON schema through `response_format`: the server masks the local model's tokens with it. max_tokens leaves
    # room for the longest answer the schema allows (an 80-character reason can take 80 tokens): at 60, a sampled
    # answer was cut before its closing brace in CI
    answers = await asyncio.gather(
        *[
            astructured(
                llm, f"Rate chat {i}: A: hi B: hello", Score, GenParams(max_tokens=120, temperature=0.8), retries=0
            )
            for i in range(4)
        ]
    )
    assert all(a.ok and a.attempts == 1 for a in answers), [a.raw for a in answers]
