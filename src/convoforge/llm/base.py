"""The one chat-model interface every backend implements."""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Coroutine
from dataclasses import replace
from typing import Any, TypeVar

from convoforge.llm.types import ChatResult, GenParams, Message, as_messages

R = TypeVar("R")


def run_sync(coro: Coroutine[Any, Any, R]) -> R:
    """Run a coroutine to completion from sync code, even inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


class ChatModel(ABC):
    """Messages in, text out; async first, with sync and streaming wrappers."""

    name: str = "chat-model"
    supports_json_schema: bool = False

    @abstractmethod
    async def _agenerate(
        self, messages: list[Message], params: GenParams, json_schema: dict | None = None
    ) -> ChatResult:
        """Generate params.n completions for one conversation."""

    async def achat(
        self,
        messages: list[Message] | list[dict] | str,
        params: GenParams | None = None,
        *,
        json_schema: dict | None = None,
        **overrides: Any,
    ) -> ChatResult:
        """Generate a reply; keyword overrides (temperature=..., n=...) patch params."""
        params = replace(params or GenParams(), **overrides)
        if isinstance(params.stop, list):
            params = replace(params, stop=tuple(params.stop))
        return await self._agenerate(as_messages(messages), params, json_schema)

    def chat(
        self,
        messages: list[Message] | list[dict] | str,
        params: GenParams | None = None,
        **overrides: Any,
    ) -> ChatResult:
        """Synchronous achat."""
        return run_sync(self.achat(messages, params, **overrides))

    async def astream(
        self,
        messages: list[Message] | list[dict] | str,
        params: GenParams | None = None,
        **overrides: Any,
    ) -> AsyncIterator[str]:
        """Yield the reply in pieces; backends without streaming yield it whole."""
        result = await self.achat(messages, params, **overrides)
        yield result.text

    async def aclose(self) -> None:  # noqa: B027 (an optional hook, not abstract)
        """Release connections or worker threads."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
