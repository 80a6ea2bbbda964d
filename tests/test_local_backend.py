"""The local backend really generates with the embedded SmolLM2."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from convoforge.llm import GenParams, astructured

pytestmark = pytest.mark.slow


def test_single_greedy_reply(local_model):
    result = local_model.chat("What is the capital of France?", max_tokens=16, temperature=0)
    assert "Paris" in result.text
    assert result.usage.prompt_tokens > 5 and 0 < result.usage.completion_tokens <= 16
    assert result.finish_reasons[0] in {"stop", "length"}


async def test_concurrent_requests_are_batched(local_model):
    before = len(local_model.batcher.batch_sizes)
    params = [GenParams(max_tokens=6 + i, temperature=0.0 if i % 2 else 0.9, top_k=40) for i in range(8)]
    results = await asyncio.gather(
        *[local_model.achat(f"Name an animal, number {i}.", p) for i, p in enumerate(params)]
    )
    sizes = local_model.batcher.batch_sizes[before:]
    assert sum(sizes) == 8 and max(sizes) >= 4, sizes
    for result, p in zip(results, params, strict=True):
        assert result.text.strip()
        assert result.usage.completion_tokens <= p.max_tokens  # per-request max inside one batch


async def test_n_samples_stop_and_seed(local_model):
    result = await local_model.achat("Count from one to ten in words.", GenParams(n=3, max_tokens=24, seed=1))
    assert len(result.texts) == 3
    stopped = await local_model.achat(
        "Count from one to ten in words, separated by commas.",
        GenParams(stop=(",",), max_tokens=24, temperature=0),
    )
    assert "," not in stopped.text and stopped.text
    a = await local_model.achat("Say a random word.", GenParams(seed=7, max_tokens=8))
    b = await local_model.achat("Say a random word.", GenParams(seed=7, max_tokens=8))
    assert a.text == b.text


async def test_a_seeded_sample_does_not_depend_on_its_batch_mates(local_model):
    params = GenParams(seed=11, max_tokens=12, temperature=1.0, n=2)
    alone = await local_model.achat("Invent a name for a cat.", params)
    others = [local_model.achat(f"Name a city, number {i}.", GenParams(max_tokens=12 + i)) for i in range(3)]
    crowded, *_ = await asyncio.gather(local_model.achat("Invent a name for a cat.", params), *others)
    assert crowded.texts == alone.texts and alone.texts[0] != alone.texts[1]  # each sample its own seed


async def test_streaming_yields_pieces(local_model):
    pieces = [p async for p in local_model.astream("Tell me about cats.", max_tokens=20, temperature=0)]
    assert len(pieces) > 1
    full = local_model.chat("Tell me about cats.", max_tokens=20, temperature=0).text
    assert "".join(pieces).strip()[:20] == full[:20]


class Colour(BaseModel):
    name: str


async def test_structured_output_with_the_real_model(local_model):
    result = await astructured(
        local_model,
        'Give a colour as JSON like {"name": "red"}.',
        Colour,
        GenParams(max_tokens=40, temperature=0),
        retries=1,
    )
    assert result.attempts in {1, 2} and result.raw
    if result.ok:
        assert result.value.name
    else:
        assert result.errors and result.value is None


def test_a_released_model_is_let_go_and_a_later_load_gets_a_new_one():
    import gc
    import weakref

    from convoforge.llm import load_chat_model, release_chat_model

    spec = "local:smollm2-135m+bias=persona-generator"  # not the session's shared instance
    first = load_chat_model(spec)
    assert load_chat_model(spec) is first  # shared per process
    assert first.chat("Say hi.", max_tokens=4, temperature=0).text
    gone, thread = weakref.ref(first), first.batcher._thread
    release_chat_model(spec)
    del first
    gc.collect()
    assert not thread.is_alive() and gone() is None  # its batcher stopped and nothing holds the weights
    again = load_chat_model(spec)
    assert again.chat("Say hi.", max_tokens=4, temperature=0).text
    release_chat_model(spec)
    release_chat_model("scripted:echo")  # not local: nothing to let go
