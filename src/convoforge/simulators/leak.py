"""Keeping target titles out of simulated utterances (iEvaLM's fuzzy filter, partial ratio > 90)."""

from __future__ import annotations

import re

from rapidfuzz import fuzz

_SENTENCES = re.compile(r"(?<=[.!?])\s+")


def leaks(sentence: str, title: str, threshold: float = 90) -> bool:
    """Whether a sentence names the title (fuzzy; short titles need a whole-word match)."""
    title = re.sub(r"\s*\(\d{4}\)$", "", title).strip()
    if len(title) < 5:  # "It", "Up": a case-sensitive word, not merely the sentence's first word
        return any(m.start() > 0 for m in re.finditer(rf"\b{re.escape(title)}\b", sentence.strip()))
    return fuzz.partial_ratio(title.lower(), sentence.lower()) > threshold


def remove_leaks(text: str, titles: list[str], threshold: float = 90) -> tuple[str, int]:
    """Drop every sentence that names a target; returns the text and how many sentences went."""
    kept, dropped = [], 0
    for sentence in _SENTENCES.split(text.strip()):
        if any(leaks(sentence, t, threshold) for t in titles):
            dropped += 1
        else:
            kept.append(sentence)
    return " ".join(kept).strip(), dropped
