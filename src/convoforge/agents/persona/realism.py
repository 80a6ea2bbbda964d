"""A critic that learns over the run: the seed's real conversations against what earlier iterations wrote.

The Critic half of the paper's loop learns nothing between iterations; only the few-shot pool grows. This expert
does: before each iteration's selection, a linear discriminator is fitted on the real seed examples (cut to the
candidates' turn counts) against every usable candidate of the earlier iterations, on the features `eval
personas` judges realism with (mean MiniLM vector of the turns plus simple statistics). A candidate that reads
less real than `drop_share` of those earlier candidates is dropped. In iteration 1 it has nothing to learn from
and drops nothing. It is registered as the `realism` critic through convoforge's own `convoforge.critics` entry
point, the plug-in point any package uses.

It shares its features with `eval personas`' discriminator, so winners it kept are chosen along the direction
that measure reads first: `eval personas` fits its own discriminator on the held-out part of the reference, never
seen here, but the two are not independent judges.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from convoforge.critics.base import Candidate, Critic, Verdict
from convoforge.errors import ConvoforgeError
from convoforge.llm.embeddings import Embedder


def as_row(candidate: Candidate) -> dict:
    """A candidate as a features row."""
    return {"pair_id": candidate.pair_id, "profiles": candidate.profiles, "messages": candidate.messages()}


class RealismExpert(Critic):
    """Filter: drops a candidate that reads less real than most of what the generator wrote in earlier iterations."""

    name = "realism"
    role = "filter"
    reads = ("turns", "profiles")
    description = (
        "learns over the run: a real-vs-generated discriminator fitted on the seed's real conversations and "
        "earlier iterations' candidates drops the least real-looking (none in iteration 1)"
    )

    def __init__(self, embedder: Embedder | str | None = None, drop_share: float = 0.5, least: int = 6) -> None:
        self.embedder = embedder
        self.drop_share = drop_share
        self.least = least
        self.model: Any = None
        self.threshold = 0.0
        self.learned: dict = {}

    @property
    def drop_share(self) -> float:
        """The share of earlier candidates' scores its threshold sits at (`--critic-option realism.drop_share=X`)."""
        return self._drop_share

    @drop_share.setter
    def drop_share(self, value: float) -> None:
        if not 0 <= value < 1:
            raise ConvoforgeError(f"critic 'realism' setting 'drop_share' is a share from 0 to below 1, not {value}")
        self._drop_share = float(value)

    def _embedder(self) -> Embedder:
        """The embedder given, one loaded from its spec (`realism.embedder=SPEC`), or the embedded MiniLM."""
        from convoforge.llm.embeddings import load_embedder

        if isinstance(self.embedder, str):
            return load_embedder(self.embedder)
        return self.embedder or load_embedder()

    def learn(self, real: list[dict], generated: list[dict]) -> dict:
        """Fit on real rows against generated ones (`profiles`, `messages`); what it learnt, for the card."""
        from convoforge.agents.persona.evaluate import matched_features
        from convoforge.datasets.discriminator import fit_discriminator

        self.model = None
        self.learned = {"real": len(real), "generated": len(generated), "drop_share": self.drop_share}
        if min(len(real), len(generated)) < self.least:
            self.learned["reason"] = f"fewer than {self.least} real or earlier generated conversations"
            return self.learned
        emb = self._embedder()
        x_real, x_gen = matched_features(emb, real, generated, random.Random(len(generated)))  # candidates' lengths
        groups = [r.get("pair_id") or str(i) for i, r in enumerate(generated)]
        self.model, found = fit_discriminator(x_real, x_gen, groups=groups)
        self.threshold = float(np.quantile(self.model.decision_function(x_gen), self.drop_share))
        self.learned |= {"accuracy": found["accuracy"], "threshold": round(self.threshold, 4)}
        return self.learned

    async def judge(self, candidates: list[Candidate], llm: Any) -> list[Verdict]:
        """Log-odds of real per candidate; below the learnt threshold fails. Unfitted: no verdict drops."""
        if self.model is None:
            why = self.learned.get("reason", "nothing learnt yet")
            return [Verdict(critic=self.name, label="not fitted", rationale=why) for _ in candidates]
        from convoforge.agents.persona.evaluate import conversation_features

        scores = self.model.decision_function(conversation_features(self._embedder(), [as_row(c) for c in candidates]))
        return [
            Verdict(
                critic=self.name,
                score=round(float(s), 4),
                passed=bool(s >= self.threshold),
                label="reads real" if s >= self.threshold else "reads generated",
                rationale=f"log-odds of real {s:.2f}; threshold {self.threshold:.2f}",
            )
            for s in scores
        ]
