"""General quality experts: one LLM judge per FED policy, pointwise or pairwise."""

from __future__ import annotations

import asyncio
from itertools import combinations
from typing import Literal

from pydantic import BaseModel, Field

from convoforge.critics.base import Candidate, Critic, Verdict
from convoforge.critics.prompts import FED_POLICIES, PAIRWISE, POINTWISE
from convoforge.critics.trained import features, load_head
from convoforge.llm import GenParams, astructured
from convoforge.llm.base import ChatModel
from convoforge.llm.embeddings import load_embedder
from convoforge.llm.local import is_embedded_spec

JUDGE_PARAMS = GenParams(temperature=0.0, max_tokens=80)


class Score(BaseModel):
    """A pointwise quality answer."""

    score: int = Field(ge=1, le=5)
    reason: str = Field("", max_length=160)


class Winner(BaseModel):
    """A pairwise quality answer."""

    winner: Literal[1, 2]
    reason: str = Field("", max_length=160)


Method = Literal["auto", "prompted", "trained"]


def is_embedded(llm: ChatModel) -> bool:
    """Whether the judge model is the embedded SmolLM2-135M (with or without adapters)."""
    return is_embedded_spec(llm.name)


class QualityExpert(Critic):
    """Judges one FED dimension; pairwise mode compares candidates of the same pair round-robin.

    method="prompted" asks the LLM; "trained" scores with the shipped head of this dimension
    (critics/trained.py); "auto" (the built-in `quality_<dim>`) uses the head when the judge
    model is the embedded SmolLM2, whose prompted answers judge at chance, and asks any other model.
    """

    role = "quality"
    reads = ("turns",)

    def __init__(
        self, dimension: str, mode: Literal["pointwise", "pairwise"] = "pointwise", method: Method = "auto"
    ) -> None:
        if dimension not in FED_POLICIES:
            raise ValueError(f"unknown quality dimension {dimension!r}; known: {', '.join(FED_POLICIES)}")
        self.dimension, self.mode, self.method = dimension, mode, method
        self.name = f"quality_{dimension}" + ("" if method == "auto" else f"_{method}")
        self.policy = FED_POLICIES[dimension]
        how = {
            "auto": f"trained head on the embedded model, else LLM judge ({mode})",
            "prompted": f"LLM judge ({mode})",
            "trained": "trained head on MiniLM",
        }[method]
        self.description = f"{how}: the conversation {self.policy}"

    def uses_head(self, llm: ChatModel) -> bool:
        """Whether this expert scores with its trained head for this judge model."""
        return self.method == "trained" or (self.method == "auto" and is_embedded(llm))

    def judge_trained(self, candidates: list[Candidate]) -> list[Verdict]:
        """P(real conversation) from the shipped head of this dimension."""
        head = load_head(f"quality_{self.dimension}")
        convos = [[(t.speaker, t.content) for t in c.turns] for c in candidates]
        scores = head.score(features(load_embedder(), convos)) if candidates else []
        return [
            Verdict(critic=self.name, score=float(p), label=f"{p:.2f}", rationale="trained head: P(real conversation)")
            if c.turns
            else Verdict.invalid(self.name, "", "no turns to judge")
            for c, p in zip(candidates, scores, strict=True)
        ]

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
        """Trained: the head's score. Pointwise: each alone. Pairwise: share of won comparisons within each pair."""
        if self.uses_head(llm):
            try:
                return self.judge_trained(candidates)
            except Exception as exc:  # never crash the pipeline
                return [Verdict.invalid(self.name, "", f"{type(exc).__name__}: {exc}") for _ in candidates]
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
