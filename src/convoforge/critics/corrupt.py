"""Controlled corruptions of real conversations: the negatives a critic must tell from the real thing."""

from __future__ import annotations

import random
from collections.abc import Callable

Row = dict  # {"profiles": {speaker: [attributes]}, "turns": [[speaker, text], ...]}

# Insults of the toxicity corruption in `eval critics`. Training uses TRAIN_INSULTS, built from other words.
INSULTS = (
    "You are a complete idiot and nobody wants to hear you.",
    "Shut up, you worthless loser.",
    "What a stupid thing to say, moron.",
    "I hate people like you, you pathetic creep.",
    "You're so dumb it hurts, go away.",
    "Nobody cares about you, you ugly fool.",
    "Get lost, you disgusting jerk.",
    "You are the most useless person I have ever met, you imbecile.",
)


_ADJECTIVES = (
    "brainless",
    "miserable",
    "clueless",
    "lazy",
    "rotten",
    "filthy",
    "spineless",
    "gross",
    "annoying",
    "selfish",
    "nasty",
    "horrible",
    "foul",
    "vile",
)
_NOUNS = (
    "clown",
    "freak",
    "slob",
    "coward",
    "pig",
    "rat",
    "waste of space",
    "failure",
    "donkey",
    "weirdo",
    "dimwit",
    "nitwit",
    "buffoon",
    "numbskull",
)
_TEMPLATES = (
    "You are a {a} {n}.",
    "Keep quiet, you {a} {n}.",
    "Honestly, you {a} {n}, no one asked.",
    "Leave, {n}, you are {a}.",
    "Such a {a} remark, you {n}.",
)
TRAIN_INSULTS = tuple(t.format(a=a, n=n) for t in _TEMPLATES for a in _ADJECTIVES for n in _NOUNS)


def _speaker_slots(turns: list[list[str]]) -> dict[str, list[int]]:
    slots: dict[str, list[int]] = {}
    for i, (speaker, _) in enumerate(turns):
        slots.setdefault(speaker, []).append(i)
    return slots


def shuffled(row: Row, rng: random.Random, pool: list[Row]) -> Row | None:
    """Each speaker's turns in a random other order (alternation and who said what are kept)."""
    turns = [list(t) for t in row["turns"]]
    original = [t[1] for t in turns]
    for idx in _speaker_slots(turns).values():
        texts = [turns[i][1] for i in idx]
        rng.shuffle(texts)
        for i, text in zip(idx, texts, strict=True):
            turns[i][1] = text
    if [t[1] for t in turns] == original:
        return None
    return {**row, "turns": turns}


def looped(row: Row, rng: random.Random, pool: list[Row]) -> Row | None:
    """The first half, then its last exchange repeated until the original length."""
    turns = row["turns"]
    if len(turns) < 4:
        return None
    keep = max(2, len(turns) // 2)
    block = turns[keep - 2 : keep]
    out = [list(t) for t in turns[:keep]]
    while len(out) < len(turns):
        out.append(list(block[(len(out) - keep) % 2]))
    return {**row, "turns": out}


def speaker_swap(row: Row, rng: random.Random, pool: list[Row]) -> Row | None:
    """The second speaker's turns taken from another conversation."""
    others = [r for r in pool if r is not row and r["turns"]]
    if not others or len(row["turns"]) < 2:
        return None
    second = row["turns"][1][0]
    donor = rng.choice(others)
    lines = [t for s, t in donor["turns"] if s == donor["turns"][min(1, len(donor["turns"]) - 1)][0]]
    if not lines:
        return None
    turns, k = [], 0
    for speaker, text in row["turns"]:
        if speaker == second:
            text, k = lines[k % len(lines)], k + 1
        turns.append([speaker, text])
    return {**row, "turns": turns}


def cut(row: Row, rng: random.Random, pool: list[Row]) -> Row | None:
    """Only the first two turns."""
    if len(row["turns"]) <= 2:
        return None
    return {**row, "turns": [list(t) for t in row["turns"][:2]]}


def persona_swap(row: Row, rng: random.Random, pool: list[Row]) -> Row | None:
    """The same conversation with another pair's profiles."""
    others = [r for r in pool if r is not row and r["profiles"] != row["profiles"]]
    if not others:
        return None
    other = rng.choice(others)["profiles"]
    speakers = list(row["profiles"])
    donors = list(other.values())
    return {**row, "profiles": {s: list(donors[i % len(donors)]) for i, s in enumerate(speakers)}}


def insult(row: Row, rng: random.Random, pool: list[Row], insults: tuple[str, ...] = INSULTS) -> Row | None:
    """An insult added to one turn after the first."""
    if len(row["turns"]) < 2:
        return None
    turns = [list(t) for t in row["turns"]]
    i = rng.randrange(1, len(turns))
    turns[i][1] = f"{turns[i][1]} {rng.choice(insults)}"
    return {**row, "turns": turns}


CORRUPTIONS: dict[str, Callable[[Row, random.Random, list[Row]], Row | None]] = {
    "shuffled": shuffled,
    "loop": looped,
    "speaker_swap": speaker_swap,
    "cut": cut,
    "persona_swap": persona_swap,
    "insult": insult,
}

# What each built-in expert is meant to catch (its own corruptions).
TARGETS: dict[str, tuple[str, ...]] = {
    "quality_depth": ("cut", "loop"),
    "quality_coherency": ("shuffled", "speaker_swap"),
    "quality_consistency": ("speaker_swap",),
    "quality_diversity": ("loop",),
    "quality_likability": ("insult",),
    "faithfulness": ("persona_swap",),
    "faithfulness_llm": ("persona_swap",),
    "toxicity": ("insult",),
    "toxicity_llm": ("insult",),
}


def targets_of(critic: str) -> tuple[str, ...]:
    """The corruptions a critic is meant to catch (`quality_coherency_trained` shares `quality_coherency`'s)."""
    base = critic.removesuffix("_trained").removesuffix("_prompted")
    return TARGETS.get(base, ())


def corrupt_all(
    rows: list[Row], kinds: list[str], seed: int = 0, insults: tuple[str, ...] | None = None
) -> list[tuple[int, str, Row]]:
    """(row index, corruption, corrupted row) for every row and kind that applies to it."""
    rng = random.Random(seed)
    out = []
    for i, row in enumerate(rows):
        for kind in kinds:
            fn = CORRUPTIONS[kind]
            bad = fn(row, rng, rows, insults) if (kind == "insult" and insults) else fn(row, rng, rows)
            if bad is not None:
                out.append((i, kind, bad))
    return out
