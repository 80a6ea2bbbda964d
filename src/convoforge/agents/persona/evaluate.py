"""Measuring generated persona dialogues and the faithfulness expert (pair- and attribute-level AUC)."""

from __future__ import annotations

import random

import numpy as np
from sklearn.metrics import roc_auc_score

from convoforge.critics.faithfulness import attribute_scores, faithfulness_score
from convoforge.critics.toxicity import lexicon_pattern
from convoforge.datasets.metrics import conversation_stats
from convoforge.llm.embeddings import Embedder


def _turns(row: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for m in row["messages"]:
        out.setdefault(m["speaker"], []).append(m["content"])
    return out


def faithfulness_scores(embedder: Embedder, rows: list[dict], unit: str = "sentence") -> list[float]:
    """The faithfulness expert's score of each conversation against its own profiles."""
    return [faithfulness_score(embedder, r["profiles"], _turns(r), unit) for r in rows]


def pair_auc(embedder: Embedder, rows: list[dict], own: list[float], unit: str = "sentence") -> float:
    """True profiles vs another conversation's profiles (a derangement), same conversations."""
    if len(rows) < 2:
        return float("nan")
    swapped = [
        faithfulness_score(embedder, rows[(i + 1) % len(rows)]["profiles"], _turns(r), unit) for i, r in enumerate(rows)
    ]
    return float(roc_auc_score([1] * len(own) + [0] * len(swapped), own + swapped))


def attribute_auc(embedder: Embedder, rows: list[dict], rng: random.Random, unit: str = "sentence") -> float:
    """A true attribute of a speaker vs a random attribute of another conversation's speaker."""
    labels: list[int] = []
    scores: list[float] = []
    for i, row in enumerate(rows):
        turns = _turns(row)
        for speaker, attrs in row["profiles"].items():
            if not attrs or not turns.get(speaker):
                continue
            other = rows[rng.choice([k for k in range(len(rows)) if k != i])]
            foreign = [a for p in other["profiles"].values() for a in p if a not in attrs]
            if not foreign:
                continue
            true_attr, fake_attr = rng.choice(attrs), rng.choice(foreign)
            pos, neg = attribute_scores(embedder, [true_attr, fake_attr], turns[speaker], unit)
            labels += [1, 0]
            scores += [float(pos), float(neg)]
    return float(roc_auc_score(labels, scores)) if len(set(labels)) == 2 else float("nan")


def toxicity_rate(rows: list[dict]) -> float:
    """Share of conversations with a lexicon hit."""
    pattern = lexicon_pattern()
    hits = sum(any(pattern.search(m["content"]) for m in r["messages"]) for r in rows)
    return hits / len(rows) if rows else 0.0


def evaluate(
    embedder: Embedder, rows: list[dict], with_aucs: bool, seed: int = 0, unit: str = "sentence"
) -> tuple[dict, list[float]]:
    """Counts, text statistics, toxicity rate, faithfulness (and its AUCs when asked)."""
    own = faithfulness_scores(embedder, rows, unit)
    report = {
        **conversation_stats([r["messages"] for r in rows]),
        "toxicity_rate": round(toxicity_rate(rows), 4),
        "faithfulness_mean": round(float(np.mean(own)), 4) if own else None,
    }
    if with_aucs:
        report["faithfulness_auc_pair"] = round(pair_auc(embedder, rows, own, unit), 4)
        report["faithfulness_auc_attribute"] = round(attribute_auc(embedder, rows, random.Random(seed), unit), 4)
    return report, own
