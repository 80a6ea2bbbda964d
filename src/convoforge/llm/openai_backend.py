"""OpenAI-compatible backend (OpenAI, vLLM, Ollama, `transformers serve`, `convoforge serve`)."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

import openai
from openai import AsyncOpenAI

from convoforge.errors import BackendError
from convoforge.llm.base import ChatModel
from convoforge.llm.types import ChatResult, GenParams, Message, Usage, as_messages

log = logging.getLogger(__name__)
R = TypeVar("R")

RETRYABLE = (
    openai.RateLimitError,
    openai.InternalServerError,
    openai.APITimeoutError,
    openai.APIConnectionError,
)


# a replica that fails this way is taken out for a while; a 429 only slows down (the replica is alive)
REPLICA_DOWN = (openai.InternalServerError, openai.APITimeoutError, openai.APIConnectionError)


class OpenAIChatModel(ChatModel):
    """Chat completions over HTTP with bounded concurrency, one layer of retries, and replicas.

    `base_url` may list several replicas of one model, comma-separated: requests go round-robin over the
    replicas that are up; a replica that drops the connection, times out or answers 5xx is taken out for
    `cooldown` seconds and the request moves to the next one at once. `failures` counts every failed attempt
    by replica and error, so a run can account for each one.
    """

    supports_json_schema = True

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        max_concurrency: int = 32,
        max_retries: int = 4,
        timeout: float = 120.0,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        cooldown: float = 15.0,
        send_seed: bool = True,
        logit_bias: dict[int, float] | None = None,
    ) -> None:
        self.model = model
        self.logit_bias = logit_bias or {}
        self._told_exempt = False
        self.name = f"openai:{model}"
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        self.replicas: list[str | None] = [u.strip() for u in self.base_url.split(",")] if self.base_url else [None]
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.timeout = timeout
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self.cooldown = cooldown
        self.send_seed = send_seed
        self.attempts = 0
        self.failures: Counter[str] = Counter()
        self._down_until: dict[str | None, float] = {}
        self._turn = 0
        self._per_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def _client(self, replica: str | None = None) -> tuple[AsyncOpenAI, asyncio.Semaphore]:
        """One client per replica and one semaphore per event loop (httpx pools are loop-bound, sized to it)."""
        import httpx

        loop = asyncio.get_running_loop()
        if loop not in self._per_loop:
            self._per_loop[loop] = ({}, asyncio.Semaphore(self.max_concurrency))
        clients, gate = self._per_loop[loop]
        replica = replica if replica in self.replicas else self.replicas[0]
        if replica not in clients:
            limits = httpx.Limits(max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency)
            clients[replica] = AsyncOpenAI(
                base_url=replica,
                api_key=self.api_key,
                max_retries=0,
                timeout=self.timeout,
                http_client=openai.DefaultAsyncHttpxClient(limits=limits, timeout=self.timeout),
            )
        return clients[replica], gate

    def _pick(self) -> str | None:
        """The next replica that is up, round-robin; when all are down, the one that comes back first."""
        now = time.monotonic()
        n = len(self.replicas)
        for k in range(n):
            replica = self.replicas[(self._turn + k) % n]
            if self._down_until.get(replica, 0.0) <= now:
                self._turn = (self._turn + k + 1) % n
                return replica
        return min(self.replicas, key=lambda r: self._down_until.get(r, 0.0))

    def _any_up(self) -> bool:
        now = time.monotonic()
        return any(self._down_until.get(r, 0.0) <= now for r in self.replicas)

    def _where(self, replica: str | None = None) -> str:
        return replica or self.base_url or "api.openai.com"

    def _delay(self, attempt: int, exc: Exception) -> float:
        """Retry-After when the server sends one, else capped exponential backoff with jitter."""
        response = getattr(exc, "response", None)
        header = response.headers.get("retry-after", "") if response is not None else ""
        if header.replace(".", "", 1).isdigit():  # seconds; an HTTP date falls back to backoff
            return min(float(header), self.backoff_max)
        return min(self.backoff_max, self.backoff_base * 2**attempt) * random.uniform(0.5, 1.5)

    async def _with_retries(self, call: Callable[[AsyncOpenAI], Awaitable[R]], gated: bool = True) -> R:
        """Call with retries; with `gated`, the replica is picked once a concurrency slot is free.

        So the first failures of a dead replica take it out before the requests queued behind them go there.
        """
        last: Exception | None = None
        _, gate = self._client()
        for attempt in range(self.max_retries + 1):
            self.attempts += 1
            try:
                if gated:
                    async with gate:
                        replica = self._pick()
                        return await call(self._client(replica)[0])
                replica = self._pick()
                return await call(self._client(replica)[0])
            except openai.AuthenticationError as exc:
                raise BackendError(f"{self._where()} refused the API key (401): set OPENAI_API_KEY") from exc
            except openai.PermissionDeniedError as exc:
                raise BackendError(f"{self._where()} denied access to model {self.model!r} (403)") from exc
            except openai.NotFoundError as exc:
                raise BackendError(f"{self._where()} does not serve model {self.model!r} (404)") from exc
            except RETRYABLE as exc:
                last = exc
                self.failures[f"{self._where(replica)}: {type(exc).__name__}"] += 1
                if isinstance(exc, REPLICA_DOWN) and len(self.replicas) > 1:
                    self._down_until[replica] = time.monotonic() + self.cooldown
                    log.warning(
                        "%s: replica %s out for %.0fs (%s)", self.name, replica, self.cooldown, type(exc).__name__
                    )
                if attempt == self.max_retries:
                    break
                if isinstance(exc, REPLICA_DOWN) and len(self.replicas) > 1 and self._any_up():
                    continue  # another replica is up: no need to wait
                delay = self._delay(attempt, exc)
                log.info("%s: %s; retry %d in %.2fs", self.name, type(exc).__name__, attempt + 1, delay)
                await asyncio.sleep(delay)
            except openai.APIStatusError as exc:
                self.failures[f"{self._where(replica)}: {exc.status_code}"] += 1
                raise BackendError(f"{self._where(replica)} answered {exc.status_code}: {_short(exc)}") from exc
            except openai.APIResponseValidationError as exc:
                self.failures[f"{self._where(replica)}: malformed response"] += 1
                raise BackendError(f"{self._where(replica)} sent a malformed response: {_short(exc)}") from exc
            except ValueError as exc:  # a body that is not JSON at all
                self.failures[f"{self._where(replica)}: malformed response"] += 1
                raise BackendError(f"{self._where(replica)} sent a malformed response: {exc}") from exc
        if isinstance(last, openai.APIConnectionError) and not isinstance(last, openai.APITimeoutError):
            raise BackendError(f"cannot reach {self._where()} ({self.max_retries + 1} attempts): {_short(last)}")
        tries = self.max_retries + 1
        raise BackendError(f"{self.name} failed after {tries} attempts: {type(last).__name__}: {_short(last)}")

    def _kwargs(self, messages: list[Message], params: GenParams, n: int) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": [m.model_dump() for m in messages],
            "temperature": params.temperature,
            "max_tokens": params.max_tokens,
            "n": n,
        }
        if params.top_p < 1.0:
            kwargs["top_p"] = params.top_p
        if params.stop:
            kwargs["stop"] = list(params.stop)
        if params.seed is not None and self.send_seed:
            kwargs["seed"] = params.seed
        for key in ("frequency_penalty", "presence_penalty"):
            if getattr(params, key):
                kwargs[key] = getattr(params, key)
        penalised = {"frequency_penalty", "presence_penalty"} & kwargs.keys()
        if params.penalty_exempt and penalised and not self._told_exempt:
            self._told_exempt = True  # once per model: every request of a run asks the same
            log.warning("%s: the OpenAI API has no penalty exemption; the penalties apply to every token", self.name)
        if params.top_k > 0 and "api.openai.com" not in self._where():
            kwargs["extra_body"] = {"top_k": params.top_k}
        if self.logit_bias:
            kwargs["logit_bias"] = {str(k): v for k, v in self.logit_bias.items()}
        return kwargs

    async def _agenerate(
        self, messages: list[Message], params: GenParams, json_schema: dict | None = None
    ) -> ChatResult:
        texts: list[str] = []
        reasons: list[str] = []
        usage = Usage()
        while len(texts) < params.n:  # servers that ignore `n` get asked again
            kwargs = self._kwargs(messages, params, params.n - len(texts))
            if json_schema is not None and self.supports_json_schema:
                kwargs["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "answer", "schema": json_schema},
                }

            async def call(client: AsyncOpenAI, kwargs: dict[str, Any] = kwargs) -> Any:
                return await client.chat.completions.create(**kwargs)

            try:
                response = await self._with_retries(call)
            except BackendError as exc:
                if "response_format" not in kwargs or "400" not in str(exc):
                    raise
                self.supports_json_schema = False  # this server has no JSON schema mode
                continue
            if not response.choices:
                raise BackendError(f"{self._where()} returned no choices")
            texts += [c.message.content or "" for c in response.choices]
            reasons += [c.finish_reason or "stop" for c in response.choices]
            if response.usage:
                usage = usage + Usage(response.usage.prompt_tokens, response.usage.completion_tokens)
        return ChatResult(texts[: params.n], usage, self.name, reasons[: params.n])

    async def astream(
        self,
        messages: list[Message] | list[dict] | str,
        params: GenParams | None = None,
        **overrides: Any,
    ) -> AsyncIterator[str]:
        """Yield content deltas; retries apply until the stream opens."""
        params = replace(params or GenParams(), **overrides)
        _, gate = self._client()
        kwargs = self._kwargs(as_messages(messages), params, 1)
        async with gate:
            stream = await self._with_retries(
                lambda client: client.chat.completions.create(**kwargs, stream=True), gated=False
            )
            try:
                async for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        yield chunk.choices[0].delta.content
            except (openai.APIError, ValueError) as exc:
                raise BackendError(f"{self._where()} broke the stream: {_short(exc)}") from exc

    async def aclose(self) -> None:
        """Close this loop's HTTP clients."""
        try:
            clients, _ = self._per_loop.pop(asyncio.get_running_loop())
        except KeyError:
            return
        for client in clients.values():
            await client.close()


def _short(exc: Exception | None) -> str:
    return str(exc).splitlines()[0][:200] if exc else "unknown error"
