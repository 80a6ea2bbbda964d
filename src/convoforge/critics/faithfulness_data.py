"""Training pairs for the faithfulness scorer from reference persona conversations."""

from __future__ import annotations

import hashlib


def split_of(row: dict, holdout: float = 0.4) -> str:
    """A stable train/test split by a hash of the profiles (not by position)."""
    key = "|".join(a for p in row["profiles"].values() for a in p)
    bucket = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if bucket < holdout else "train"


def speaker_text(row: dict, speaker: str) -> str:
    """Everything one speaker says, joined."""
    return " ".join(t for s, t in row["turns"] if s == speaker)


def attribute_pairs(rows: list[dict]) -> list[tuple[str, str]]:
    """(persona attribute, all that its speaker says) for every attribute of every speaker."""
    pairs = []
    for row in rows:
        for speaker, attrs in row["profiles"].items():
            text = speaker_text(row, speaker)
            if text:
                pairs += [(a, text) for a in attrs]
    return pairs
