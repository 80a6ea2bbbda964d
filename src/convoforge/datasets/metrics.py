"""Text statistics of generated conversations (turns, distinct-n, repetition, recitation) and two exact tests."""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter

_WORD = re.compile(r"[a-z0-9']+")


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens."""
    return _WORD.findall(text.lower())


def distinct_n(texts: list[str], n: int) -> float:
    """Unique n-grams over all n-grams across texts (Li et al. 2016)."""
    grams: Counter[tuple[str, ...]] = Counter()
    for text in texts:
        toks = tokens(text)
        grams.update(tuple(toks[i : i + n]) for i in range(len(toks) - n + 1))
    total = sum(grams.values())
    return len(grams) / total if total else 0.0


def repetition(conversations: list[list[str]]) -> float:
    """Share of utterances that repeat an earlier utterance of the same conversation."""
    repeated = total = 0
    for utts in conversations:
        seen: set[str] = set()
        for u in utts:
            key = " ".join(tokens(u))
            repeated += key in seen
            seen.add(key)
            total += 1
    return repeated / total if total else 0.0


def recited(utterances: list[str], attributes: list[str], min_words: int = 3) -> int:
    """How many utterances contain a persona sentence word for word (the profile recited, not talked about)."""
    keys = [f" {' '.join(t)} " for t in map(tokens, attributes) if len(t) >= min_words]
    return sum(any(k in f" {' '.join(tokens(u))} " for k in keys) for u in utterances)


def conversation_stats(conversations: list[list[dict]]) -> dict:
    """Counts, turns per conversation and per user, distinct-1/2, repetition."""
    utts = [[m["content"] for m in c] for c in conversations]
    flat = [u for c in utts for u in c]
    per_user = [sum(m["speaker"] == s for m in c) for c in conversations for s in {m["speaker"] for m in c}]
    return {
        "conversations": len(conversations),
        "turns_per_conversation": round(statistics.fmean(len(c) for c in utts), 2) if utts else 0.0,
        "turns_per_user": round(statistics.fmean(per_user), 2) if per_user else 0.0,
        "words_per_turn": round(statistics.fmean(len(tokens(u)) for u in flat), 2) if flat else 0.0,
        "distinct_1": round(distinct_n(flat, 1), 4),
        "distinct_2": round(distinct_n(flat, 2), 4),
        "repetition": round(repetition(utts), 4),
    }


def fisher_exact(hits_a: int, n_a: int, hits_b: int, n_b: int) -> float:
    """Two-sided Fisher exact p that two rates (hits_a of n_a, hits_b of n_b) are the same."""
    hits, n = hits_a + hits_b, n_a + n_b

    def prob(k: int) -> float:
        return math.comb(n_a, k) * math.comb(n_b, hits - k) / math.comb(n, hits)

    seen = prob(hits_a)
    tables = range(max(0, hits - n_b), min(hits, n_a) + 1)
    return round(min(1.0, sum(p for k in tables if (p := prob(k)) <= seen * (1 + 1e-9))), 4)


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p on paired examples: only_a found by A alone, only_b by B alone."""
    n = only_a + only_b
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2**n if n else 1.0
    return round(min(1.0, 2 * tail), 4)
