"""Structured output into a pydantic model: schema, parse, validate, bounded repair."""

from __future__ import annotations

import json
import re
from dataclasses import replace

from pydantic import BaseModel, ValidationError

from convoforge.errors import BackendError
from convoforge.llm.base import ChatModel, run_sync
from convoforge.llm.prompts import JSON_INSTRUCTION, JSON_REPAIR
from convoforge.llm.types import GenParams, Message, StructuredResult, T, Usage, as_messages

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def extract_json(text: str) -> str:
    """Return the first balanced JSON object (or array) in text, fences stripped."""
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1)
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start < 0:
        raise ValueError("no JSON object in the answer")
    depth, in_str, escape = 0, False, False
    for i in range(start, len(text)):
        ch = text[i]
        if in_str:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
    raise ValueError("unterminated JSON object in the answer")


def parse_into(text: str, schema: type[T]) -> T:
    """Parse and validate text into schema; raises ValueError with a short reason."""
    try:
        data = json.loads(extract_json(text))
    except json.JSONDecodeError as exc:
        raise ValueError(f"malformed JSON ({exc.msg} at char {exc.pos})") from exc
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"schema mismatch ({reasons})") from exc


def schema_prompt(schema: type[BaseModel]) -> str:
    """The instruction that asks for one JSON object of schema."""
    return JSON_INSTRUCTION.format(schema=json.dumps(schema.model_json_schema()))


async def astructured(
    model: ChatModel,
    messages: list[Message] | list[dict] | str,
    schema: type[T],
    params: GenParams | None = None,
    retries: int = 2,
) -> StructuredResult[T]:
    """Ask for a schema-valid answer; repair up to retries times; never raise on bad output."""
    params = replace(params or GenParams(), n=1)
    convo = as_messages(messages)
    instruction = schema_prompt(schema)
    if convo and convo[0].role == "system":
        convo = [Message(role="system", content=f"{convo[0].content}\n\n{instruction}"), *convo[1:]]
    else:
        convo = [Message(role="system", content=instruction), *convo]
    json_schema = schema.model_json_schema() if model.supports_json_schema else None
    usage, errors, raw = Usage(), [], ""
    for attempt in range(1, retries + 2):
        try:
            result = await model.achat(convo, params, json_schema=json_schema)
        except BackendError as exc:
            errors.append(str(exc))
            return StructuredResult(None, raw, attempt, errors, usage)
        usage = usage + result.usage
        raw = result.text
        try:
            return StructuredResult(parse_into(raw, schema), raw, attempt, errors, usage)
        except ValueError as exc:
            errors.append(str(exc))
            convo = [
                *convo,
                Message(role="assistant", content=raw),
                Message(role="user", content=JSON_REPAIR.format(error=exc)),
            ]
    return StructuredResult(None, raw, retries + 1, errors, usage)


def structured(
    model: ChatModel,
    messages: list[Message] | list[dict] | str,
    schema: type[T],
    params: GenParams | None = None,
    retries: int = 2,
) -> StructuredResult[T]:
    """Synchronous astructured."""
    return run_sync(astructured(model, messages, schema, params, retries))
