"""Structured output: parse, validate, bounded repair, typed failure."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from convoforge.errors import BackendError
from convoforge.llm import astructured, structured
from convoforge.llm.scripted import ScriptedChatModel
from convoforge.llm.structured import extract_json, parse_into


class Verdict(BaseModel):
    score: int
    reason: str


@pytest.mark.parametrize(
    "text",
    [
        '{"score": 3, "reason": "ok"}',
        'Sure! ```json\n{"score": 3, "reason": "ok"}\n``` hope that helps',
        'Here: {"score": 3, "reason": "a {brace} and a \\"quote\\""} trailing',
    ],
)
def test_extract_and_parse(text):
    assert parse_into(text, Verdict).score == 3


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("no json here", "no JSON object"),
        ('{"score": 3, "reason": "ok"', "unterminated"),
        ('{"score": "three", "reason": "ok"}', "schema mismatch"),
        ("{'score': 3}", "malformed JSON"),
    ],
)
def test_bad_answers_give_reasons(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_into(text, Verdict)


def test_extract_json_returns_first_object():
    assert extract_json('a {"x": [1, 2]} b {"y": 1}') == '{"x": [1, 2]}'


def test_repair_path_recovers_and_shows_the_error():
    model = ScriptedChatModel(['{"score": "high"}', '{"score": 4, "reason": "fixed"}'])
    result = structured(model, "Rate it", Verdict, retries=2)
    assert result.ok and result.value == Verdict(score=4, reason="fixed")
    assert result.attempts == 2
    assert "schema mismatch" in result.errors[0]
    repair_prompt = model.requests[1][-1].content
    assert "not valid" in repair_prompt and "score" in repair_prompt
    assert model.requests[0][0].role == "system" and "JSON schema" in model.requests[0][0].content


async def test_never_valid_is_a_typed_failure_with_raw_text():
    model = ScriptedChatModel(["nope", "still nope", "never"])
    result = await astructured(model, "Rate it", Verdict, retries=2)
    assert not result.ok and result.value is None
    assert result.raw == "never" and result.attempts == 3 and len(result.errors) == 3


async def test_backend_failure_is_a_typed_failure():
    def broken(messages):
        raise BackendError("server down")

    result = await astructured(ScriptedChatModel(broken), "Rate it", Verdict)
    assert not result.ok and result.errors == ["server down"]


def test_existing_system_prompt_is_kept():
    model = ScriptedChatModel(['{"score": 1, "reason": "r"}'])
    structured(
        model,
        [{"role": "system", "content": "You judge."}, {"role": "user", "content": "x"}],
        Verdict,
    )
    system = model.requests[0][0].content
    assert system.startswith("You judge.") and "JSON schema" in system
