"""An OpenAI-compatible HTTP server in front of any ChatModel (`convoforge serve`)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from convoforge.errors import BackendError
from convoforge.llm.base import ChatModel
from convoforge.llm.types import GenParams, Message


class ChatRequest(BaseModel):
    """The subset of the chat-completions request convoforge honours."""

    model: str
    messages: list[Message]
    temperature: float = 0.7
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    top_p: float = 1.0
    top_k: int = 0
    n: int = 1
    stop: str | list[str] | None = None
    seed: int | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    stream: bool = False
    response_format: dict[str, Any] | None = None


def _schema(req: ChatRequest) -> dict | None:
    """The JSON schema of a `response_format: {"type": "json_schema", ...}` request, if any."""
    fmt = req.response_format or {}
    if fmt.get("type") != "json_schema":
        return None
    return (fmt.get("json_schema") or {}).get("schema")


def _params(req: ChatRequest) -> GenParams:
    stop = [req.stop] if isinstance(req.stop, str) else req.stop or []
    return GenParams(
        temperature=req.temperature,
        max_tokens=req.max_completion_tokens or req.max_tokens or 256,
        top_p=req.top_p,
        top_k=req.top_k,
        stop=tuple(stop),
        seed=req.seed,
        n=req.n,
        frequency_penalty=req.frequency_penalty,
        presence_penalty=req.presence_penalty,
    )


def build_app(model: ChatModel, served_name: str | None = None) -> FastAPI:
    """A FastAPI app answering /v1/models and /v1/chat/completions from model."""
    app = FastAPI(title="convoforge serve")
    name = served_name or model.name

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": name, "object": "model", "owned_by": "convoforge"}],
        }

    @app.post("/v1/chat/completions", response_model=None)
    async def completions(req: ChatRequest) -> dict[str, Any] | StreamingResponse:
        if req.model != name:
            raise HTTPException(404, detail=f"model {req.model!r} not found; this server has {name!r}")
        params = _params(req)
        created, cid = int(time.time()), f"chatcmpl-{uuid.uuid4().hex[:12]}"
        if req.stream:
            return StreamingResponse(_sse(model, req, params, cid, created), media_type="text/event-stream")
        try:
            result = await model.achat(req.messages, params, json_schema=_schema(req))
        except BackendError as exc:
            raise HTTPException(502, detail=str(exc)) from exc
        return {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": name,
            "choices": [
                {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": r}
                for i, (t, r) in enumerate(
                    zip(
                        result.texts,
                        result.finish_reasons or ["stop"] * len(result.texts),
                        strict=False,
                    )
                )
            ],
            "usage": {
                "prompt_tokens": result.usage.prompt_tokens,
                "completion_tokens": result.usage.completion_tokens,
                "total_tokens": result.usage.total_tokens,
            },
        }

    return app


async def _sse(model: ChatModel, req: ChatRequest, params: GenParams, cid: str, created: int) -> AsyncIterator[str]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        body = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": req.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(body)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    async for piece in model.astream(req.messages, params):
        yield chunk({"content": piece})
    yield chunk({}, "stop")
    yield "data: [DONE]\n\n"
