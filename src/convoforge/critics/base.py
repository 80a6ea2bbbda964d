"""The critic contract: what a critic reads, what it writes, and its verdict."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, Literal

from pydantic import BaseModel, Field

from convoforge.errors import ConvoforgeError
from convoforge.llm import GenParams, astructured
from convoforge.llm.base import ChatModel

Role = Literal["quality", "filter"]


class Turn(BaseModel):
    """One utterance of a conversation."""

    speaker: str
    content: str


class Candidate(BaseModel):
    """A generated conversation waiting for the critics."""

    id: str
    pair_id: str
    iteration: int
    profiles: dict[str, list[str]]
    turns: list[Turn] = Field(default_factory=list)
    raw: str = ""
    parse_error: str | None = None
    hygiene: str | None = None
    prompt: list[dict[str, str]] = Field(default_factory=list)

    @property
    def usable(self) -> bool:
        """Parsed and clean: what the critics judge (a hygiene failure is rejected before them)."""
        return not self.parse_error and not self.hygiene

    def messages(self) -> list[dict[str, str]]:
        """The turns as dataset messages (`speaker`, `content`)."""
        return [{"speaker": t.speaker, "content": t.content} for t in self.turns]

    def transcript(self) -> str:
        """The conversation as `Speaker: text` lines."""
        return "\n".join(f"{t.speaker}: {t.content}" for t in self.turns)

    def utterances(self, speaker: str) -> list[str]:
        """What one speaker said."""
        return [t.content for t in self.turns if t.speaker == speaker]


class Verdict(BaseModel):
    """A critic's judgement of one candidate; invalid verdicts keep the raw answer."""

    critic: str
    valid: bool = True
    score: float | None = None
    passed: bool | None = None
    label: str | None = None
    rationale: str = ""
    raw: str = ""
    error: str | None = None

    @classmethod
    def invalid(cls, critic: str, raw: str, error: str) -> Verdict:
        """A verdict for an answer the critic could not use."""
        return cls(critic=critic, valid=False, raw=raw, error=error)


class Critic:
    """Base of every critic, built-in or user-written: define `judge_one(candidate, llm)` (sync or async).

    `judge_one` may return a Verdict, a float or a bool; a critic that judges a whole batch at
    once overrides `judge` instead (loading a critic that has neither is an error).

    A `filter` critic sets `passed` (False drops the candidate); a `quality` critic sets
    `score` (higher is better) and takes part in the majority vote. `reads` names the
    Candidate fields it uses; its verdicts are written under `verdicts[name]`.

    A critic that also defines `learn(real, generated) -> dict` learns over a run: before each iteration's
    selection it is given the seed's real conversations and every earlier iteration's judged candidates (rows
    with `profiles` and `messages`), then judges that iteration's candidates; what it returns goes on the card.
    """

    name: str = "critic"
    role: Role = "quality"
    reads: tuple[str, ...] = ("turns",)
    description: str = ""
    higher_is_better: bool = True  # False where the score measures a fault (toxicity's share of toxic turns)

    @property
    def writes(self) -> str:
        """The key this critic's verdicts are stored under."""
        return f"verdicts.{self.name}"

    async def judge(self, candidates: list[Candidate], llm: ChatModel) -> list[Verdict]:
        """Judge all candidates concurrently; a crash becomes an invalid verdict."""
        return list(await asyncio.gather(*[self._safe_one(c, llm) for c in candidates]))

    async def _safe_one(self, candidate: Candidate, llm: ChatModel) -> Verdict:
        try:
            out = self.judge_one(candidate, llm)  # type: ignore[attr-defined]  # defined by each subclass
            if inspect.isawaitable(out):
                out = await out
        except Exception as exc:  # distilabel's contract: never crash the pipeline
            return Verdict.invalid(self.name, "", f"{type(exc).__name__}: {exc}")
        return self.coerce(out)

    def coerce(self, out: Any) -> Verdict:
        """Turn a plain float/bool answer into a Verdict."""
        if isinstance(out, Verdict):
            return out.model_copy(update={"critic": self.name})
        if isinstance(out, bool):
            return Verdict(critic=self.name, passed=out, score=float(out), label="pass" if out else "fail")
        if isinstance(out, int | float):
            return Verdict(critic=self.name, score=float(out))
        return Verdict.invalid(self.name, repr(out)[:500], f"unusable answer of type {type(out).__name__}")


def learns(critic: Critic) -> bool:
    """Whether a critic learns over the run (defines `learn`): it judges at selection, not in the shards."""
    return callable(getattr(critic, "learn", None))


def judging_once(critics: list[Critic], where: str) -> list[Critic]:
    """The critics, refusing one that learns over a run: `where` judges one batch, so it would drop nothing."""
    if learners := [c.name for c in critics if learns(c)]:
        raise ConvoforgeError(
            f"critic {learners[0]!r} learns over a `generate personas` run (from its seed examples and earlier "
            f"iterations); {where} judges one batch, where it would have nothing to learn from and drop nothing"
        )
    return critics


async def verdicts_by_id(critic: Critic, candidates: list[Candidate], llm: ChatModel) -> dict[str, Verdict]:
    """A critic's verdicts keyed by candidate id; a wrong number of verdicts makes them all invalid."""
    found = await critic.judge(candidates, llm) if candidates else []
    if len(found) != len(candidates):
        found = [Verdict.invalid(critic.name, "", "critic returned a wrong number of verdicts")] * len(candidates)
    return {c.id: v for c, v in zip(candidates, found, strict=True)}


async def llm_filter_verdict(
    critic: str,
    llm: ChatModel,
    prompt: str,
    schema: type[BaseModel],
    flag: str,
    labels: tuple[str, str],
    score_flag: bool = False,
    max_tokens: int = 80,
) -> Verdict:
    """Ask an LLM judge whose answer field `flag` True fails the candidate; labels = (good, bad).

    The score is 1.0 for a good answer, or for a bad one when score_flag is set (e.g. toxicity).
    """
    result = await astructured(llm, prompt, schema, GenParams(temperature=0.0, max_tokens=max_tokens), retries=1)
    if not result.ok:
        return Verdict.invalid(critic, result.raw, "; ".join(result.errors))
    bad = bool(getattr(result.value, flag))
    return Verdict(
        critic=critic,
        passed=not bad,
        score=float(bad if score_flag else not bad),
        label=labels[bad],
        rationale=getattr(result.value, "reason", ""),
        raw=result.raw,
    )
