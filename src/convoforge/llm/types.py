"""Plain data types of the chat-model interface."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel

Role = Literal["system", "user", "assistant"]


class Message(BaseModel):
    """One chat message."""

    role: Role
    content: str


def as_messages(messages: list[Message] | list[dict] | str) -> list[Message]:
    """Normalise a prompt string, dicts or Messages into a list of Messages."""
    if isinstance(messages, str):
        return [Message(role="user", content=messages)]
    return [m if isinstance(m, Message) else Message(**m) for m in messages]


def draw_seed(rng: random.Random) -> int:
    """A request's sampling seed (`GenParams.seed`), drawn from a seeded random stream."""
    return rng.randrange(2**31)


def keyed_rng(seed: int, *key: object) -> random.Random:
    """A random stream of its own from a run's seed and what it is for (a stage, a persona pair)."""
    return random.Random(":".join(map(str, (seed, *key))))


def keyed_seed(seed: int, *key: object) -> int:
    """A request's sampling seed from a run's seed and what the request is for (a stage, a persona pair)."""
    return draw_seed(keyed_rng(seed, *key))


@dataclass(frozen=True)
class GenParams:
    """Sampling settings of one request."""

    temperature: float = 0.7
    max_tokens: int = 256
    top_p: float = 1.0
    top_k: int = 0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    n: int = 1
    # OpenAI's penalties: each token's logit minus frequency x its count so far in the reply, minus presence if >0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    # text whose tokens the penalties leave alone (a transcript's speaker tags and line breaks); local backend only,
    # as llama.cpp's penalize_nl: OpenAI's API has no such field
    penalty_exempt: tuple[str, ...] = ()

    @property
    def greedy(self) -> bool:
        """Whether sampling reduces to argmax."""
        return self.temperature <= 0.0


@dataclass
class Usage:
    """Token counts of one request."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )


@dataclass
class ChatResult:
    """The n completions of one request and its token usage."""

    texts: list[str]
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    finish_reasons: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The first completion."""
        return self.texts[0] if self.texts else ""


T = TypeVar("T", bound=BaseModel)


@dataclass
class StructuredResult(Generic[T]):
    """A structured answer: the validated value, or a typed failure with the raw text."""

    value: T | None
    raw: str
    attempts: int
    errors: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)

    @property
    def ok(self) -> bool:
        """Whether the answer validated."""
        return self.value is not None
