"""Grammar-constrained JSON on the local backend: the real SmolLM2, single, batched with mixed schemas, truncated."""

from __future__ import annotations

import asyncio
import json
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from convoforge.errors import BackendError
from convoforge.llm import GenParams, astructured
from convoforge.llm.grammar import closed


class Score(BaseModel):
    score: int = Field(ge=1, le=5)
    reason: str = Field("", max_length=80)


class Winner(BaseModel):
    winner: Literal[1, 2]


class Tags(BaseModel):
    tags: list[str]
    note: str = ""


def test_closed_schema_forbids_extra_keys_and_bounds_strings_and_arrays():
    schema = closed(Tags.model_json_schema())
    assert schema["additionalProperties"] is False
    assert schema["properties"]["tags"]["maxItems"] == 8
    assert schema["properties"]["tags"]["items"]["maxLength"] == 200
    assert schema["properties"]["note"]["maxLength"] == 200
    assert closed(Score.model_json_schema())["properties"]["reason"]["maxLength"] == 80  # its own bound stays


@pytest.mark.slow
async def test_single_answer_is_schema_valid(local_model):
    assert local_model.supports_json_schema
    result = await astructured(
        local_model,
        "Rate this chat: A: hi B: hello",
        Score,
        GenParams(temperature=0.7, max_tokens=60, seed=1),
        retries=0,
    )
    assert result.ok, result.raw
    assert result.attempts == 1
    assert set(json.loads(result.raw)) <= {"score", "reason"}


@pytest.mark.slow
async def test_mixed_schemas_and_plain_rows_share_one_batch(local_model):
    batches_before = len(local_model.batcher.batch_sizes)
    params = GenParams(temperature=0.8, max_tokens=60, seed=3)
    results = await asyncio.gather(
        *[astructured(local_model, f"Rate conversation {i}.", Score, params, retries=0) for i in range(3)],
        *[astructured(local_model, "Which is better, 1 or 2?", Winner, params, retries=0) for _ in range(2)],
        *[astructured(local_model, "List three fruits.", Tags, params, retries=0) for _ in range(2)],
        local_model.achat("Name a colour.", max_tokens=12, temperature=0),
    )
    *typed, plain = results
    assert all(r.ok for r in typed), [r.raw for r in typed if not r.ok]
    assert [type(r.value) for r in typed] == [Score] * 3 + [Winner] * 2 + [Tags] * 2
    assert plain.text and not plain.text.lstrip().startswith("{")  # the plain row was not constrained
    sizes = local_model.batcher.batch_sizes[batches_before:]
    assert max(sizes) >= 4, sizes  # rows with different schemas and none were batched together


@pytest.mark.slow
async def test_truncated_answer_is_a_typed_failure_with_its_raw_text(local_model):
    result = await astructured(local_model, "Rate it.", Score, GenParams(temperature=0.0, max_tokens=4), retries=0)
    assert not result.ok
    assert result.raw.startswith("{")
    assert "unterminated" in result.errors[0] or "malformed" in result.errors[0]


@pytest.mark.slow
async def test_unconstrained_model_still_parses(local_model):
    local_model.supports_json_schema = False
    try:
        result = await astructured(local_model, "Rate it.", Score, GenParams(temperature=0.0, max_tokens=24), retries=0)
    finally:
        local_model.supports_json_schema = True
    assert result.raw and result.attempts == 1  # asked without a mask; a bad answer is a failure, not a crash


@pytest.mark.slow
async def test_prompt_longer_than_the_context_is_a_clear_error(local_model):
    words = " ".join(["word"] * 20_000)
    with pytest.raises(BackendError, match="reads at most 8,192"):
        await local_model.achat(words, max_tokens=8)
    result = await astructured(local_model, words, Score, retries=0)
    assert not result.ok and "reads at most" in result.errors[0]


@pytest.mark.slow
def test_max_tokens_shrinks_to_fit_the_context(local_model, caplog):
    assert local_model._fit(8_000, GenParams(max_tokens=400)).max_tokens == 192
    assert "cut to 192" in caplog.text
    assert local_model._fit(100, GenParams(max_tokens=400)).max_tokens == 400
