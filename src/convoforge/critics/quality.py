"""General quality experts: one LLM judge per FED policy, pointwise or pairwise."""

from __future__ import annotations

import asyncio
from itertools import combinations
from typing import Literal

from pydantic import BaseModel, Field

from convoforge.critics.base import Candidate, Critic, Verdict
from convoforge.critics.prompts import FED_POLICIES, PAIRWISE, POINTWISE
from convoforge.llm import GenParams, astructured
from convoforge.llm.base import ChatModel

JUDGE_PARAMS = GenParams(temperature=0.0, max_tokens=64)


class Score(BaseModel):
    """A pointwise quality answer."""

    score: int = Field(ge=1, le=5)
    reason: str = ""


class Winner(BaseModel):
    """A pairwise quality answer."""

    winner: Literal[1, 2]
    reason: str = ""


class QualityExpert(Critic):
    """Judges one FED dimension; pairwise mode compares candidates of the same pair round-robin."""

    role = "quality"
    reads = ("turns",)

    def __init__(self, dimension: str, mode: Literal["pointwise", "pairwise"] = "pointwise") -> None:
        if dimension not in FED_POLICIES:
            raise ValueError(f"unknown quality dimension {dimension!r}; known: {', '.join(FED_POLICIES)}")
        self.dimension, self.mode = dimension, mode
        self.name = f"quality_{dimension}"
        self.policy = FED_POLICIES[dimension]
        self.description = f"LLM judge ({mode}): the conversation {self.policy}"

    async def judge_one(self, candidate: Candidate, llm: ChatModel) -> Verdict:
        """Pointwise 1-5 score, mapped to 0..1."""
        prompt = POINTWISE.format(conversation=candidate.transcript(), policy=self.policy)
        result = await astructured(llm, prompt, Score, JUDGE_PARAMS, retries=1)
        if not result.ok:
            return Verdict.invalid(self.name, result.raw, "; ".join(result.errors))
        value = result.value
        return Verdict(
            critic=self.name,
            score=(value.score - 1) / 4,
            label=str(value.score),
            rationale=value.reason,
            raw=result.raw,
        )

    async def judge(self, candidates: list[Candidate], llm: ChatModel) -> list[Verdict]:
        """Pointwise: each alone. Pairwise: share of won comparisons within each pair."""
        if self.mode == "pointwise":
            return await super().judge(candidates, llm)
        groups: dict[str, list[Candidate]] = {}
        for c in candidates:
            groups.setdefault(c.pair_id, []).append(c)
        matches = [(a, b) for group in groups.values() for a, b in combinations(group, 2)]
        answers = await asyncio.gather(*[self._compare(a, b, llm) for a, b in matches])
        wins = {c.id: 0 for c in candidates}
        played = {c.id: 0 for c in candidates}
        raws: dict[str, list[str]] = {c.id: [] for c in candidates}
        for (a, b), (winner, raw) in zip(matches, answers, strict=True):
            raws[a.id].append(raw)
            raws[b.id].append(raw)
            if winner is None:
                continue
            played[a.id] += 1
            played[b.id] += 1
            wins[(a if winner == 1 else b).id] += 1
        verdicts = []
        for c in candidates:
            if len(groups[c.pair_id]) == 1:
                verdicts.append(Verdict(critic=self.name, score=1.0, label="alone", rationale="no rival"))
            elif played[c.id] == 0:
                verdicts.append(Verdict.invalid(self.name, "\n---\n".join(raws[c.id]), "no usable comparison"))
            else:
                score = wins[c.id] / played[c.id]
                verdicts.append(Verdict(critic=self.name, score=score, label=f"{wins[c.id]}/{played[c.id]} wins"))
        return verdicts

    async def _compare(self, a: Candidate, b: Candidate, llm: ChatModel) -> tuple[int | None, str]:
        prompt = PAIRWISE.format(a=a.transcript(), b=b.transcript(), policy=self.policy)
        result = await astructured(llm, prompt, Winner, JUDGE_PARAMS, retries=1)
        return (result.value.winner if result.ok else None), result.raw
