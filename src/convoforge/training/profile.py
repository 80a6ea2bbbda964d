"""RLPF (Wu et al. 2024): reward a profile summary by how well it retrieves the user's held-out liked items."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import numpy as np

from convoforge.datasets.catalog import load_catalog
from convoforge.datasets.index import VectorIndex, item_vectors
from convoforge.llm.embeddings import load_embedder


def completion_text(completion: Any) -> str:
    """A TRL completion (text, or conversational messages) as plain text."""
    if isinstance(completion, list):
        return " ".join(m.get("content", "") for m in completion if isinstance(m, dict))
    return str(completion)


class ProfileReward:
    """Recall@k of held-out liked items, ranked by the summary against the catalogue, minus a length term."""

    def __init__(self, catalog: str | Path, k: int = 50, max_words: int = 60, length_weight: float = 0.5) -> None:
        self.catalog = load_catalog(catalog)
        self.embedder = load_embedder()
        texts = [it.text() for it in self.catalog.items]
        self.index = VectorIndex(item_vectors(self.embedder, texts, self.catalog.fingerprint))
        self.k, self.max_words, self.length_weight = k, max_words, length_weight
        self.__name__ = "profile_recall"

    def recall(self, summaries: list[str], histories: list[list[str]], held_out: list[list[str]]) -> list[float]:
        """Share of each user's held-out items in the top k (already-rated items excluded)."""
        vectors = self.embedder.embed_query([s or "-" for s in summaries])
        depth = self.k + max(len(h) for h in histories)
        _, rows = self.index.search(np.asarray(vectors), depth)
        out = []
        for row, seen, wanted in zip(rows, histories, held_out, strict=True):
            seen_set = set(seen)
            ranked = [self.catalog.items[i].id for i in row if i >= 0 and self.catalog.items[i].id not in seen_set]
            out.append(len(set(ranked[: self.k]) & set(wanted)) / len(wanted) if wanted else 0.0)
        return out

    def length_penalty(self, summary: str) -> float:
        """RLPF's length term: summaries past max_words lose reward in proportion."""
        return self.length_weight * max(0, len(summary.split()) - self.max_words) / self.max_words

    def rewards(self, texts: list[str], recalls: list[float]) -> list[float]:
        """Recall minus the length term; an empty summary gets -1."""
        return [r - self.length_penalty(t) if t else -1.0 for r, t in zip(recalls, texts, strict=True)]

    def __call__(self, prompts: list, completions: list, history: list, held_out: list, **_: Any) -> list[float]:
        """TRL reward-function signature: one float per completion."""
        texts = [completion_text(c).strip() for c in completions]
        return self.rewards(texts, self.recall(texts, history, held_out))


def score_profiles(reward: ProfileReward, summaries: list[str], rows: list[dict]) -> dict:
    """Prediction accuracy (recall@k of held-out liked items) and length of a set of summaries."""
    recalls = reward.recall(summaries, [r["history"] for r in rows], [r["held_out"] for r in rows])
    words = [len(s.split()) for s in summaries]
    return {
        f"recall@{reward.k}": round(statistics.fmean(recalls), 4),
        "mean_words": round(statistics.fmean(words), 1),
        "over_length": round(sum(w > reward.max_words for w in words) / len(words), 4),
        "reward": round(statistics.fmean(reward.rewards(summaries, recalls)), 4),
    }
