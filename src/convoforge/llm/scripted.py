"""Deterministic replies: a list (cycled in order) or a function of the messages."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence

from convoforge.llm.base import ChatModel
from convoforge.llm.types import ChatResult, GenParams, Message, Usage

Reply = Callable[[list[Message]], str]


def echo(messages: list[Message]) -> str:
    """Reply with the last user message."""
    return next((m.content for m in reversed(messages) if m.role == "user"), "")


class ScriptedChatModel(ChatModel):
    """A backend whose answers are fixed in advance; it records every request and its settings."""

    def __init__(self, replies: Sequence[str] | Reply = echo, name: str = "scripted", delay: float = 0.0) -> None:
        self.name = name
        self._replies = replies if callable(replies) else list(replies)
        if not callable(replies) and not self._replies:
            raise ValueError("a scripted model needs at least one reply")
        self.delay = delay
        self._lock = threading.Lock()
        self._next = 0
        self.requests: list[list[Message]] = []
        self.params: list[GenParams] = []  # each request's sampling settings, beside its messages

    def _one(self, messages: list[Message]) -> str:
        if callable(self._replies):
            return self._replies(messages)
        with self._lock:
            reply = self._replies[self._next % len(self._replies)]
            self._next += 1
        return reply

    async def _agenerate(
        self, messages: list[Message], params: GenParams, json_schema: dict | None = None
    ) -> ChatResult:
        if self.delay:
            await asyncio.sleep(self.delay)
        with self._lock:
            self.requests.append(messages)
            self.params.append(params)
        texts = [_apply_stop(self._one(messages), params.stop) for _ in range(params.n)]
        prompt_words = sum(len(m.content.split()) for m in messages)
        usage = Usage(prompt_words, sum(len(t.split()) for t in texts))
        return ChatResult(texts, usage, self.name, ["stop"] * len(texts))


def _apply_stop(text: str, stop: tuple[str, ...]) -> str:
    """Cut text at the first stop string."""
    cut = min((i for s in stop if (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]
