"""Synthetic-Persona-Chat CSVs and `User 1: ...` transcripts."""

from __future__ import annotations

import csv
import random
import re
from pathlib import Path

from convoforge.errors import ConvoforgeError, reading

SPC_COLUMNS = ("user 1 personas", "user 2 personas", "Best Generated Conversation")
TRANSCRIPT_MARKUP = ("User 1:", "User 2:", "\n")  # what a transcript repeats by its format: no penalty on it
_TURN = re.compile(r"^\s*(User ?[12])\s*:\s*(.*)$", re.IGNORECASE)


def parse_transcript(text: str) -> list[tuple[str, str]]:
    """`User 1: ...` lines into (speaker, text) turns; other lines continue the last turn."""
    turns: list[tuple[str, str]] = []
    for line in text.splitlines():
        if m := _TURN.match(line):
            speaker = "User 1" if m.group(1).replace(" ", "").lower().endswith("1") else "User 2"
            turns.append((speaker, m.group(2).strip()))
        elif turns and line.strip():
            turns[-1] = (turns[-1][0], f"{turns[-1][1]} {line.strip()}")
    return [t for t in turns if t[1]]


def first_turns(turns: list, per_user: int) -> list:
    """The turns up to each speaker's `per_user`-th (a conversation cut to a length, in order)."""
    counts: dict[str, int] = {}
    kept = []
    for speaker, text in turns:
        if counts.get(speaker, 0) >= per_user:
            break
        counts[speaker] = counts.get(speaker, 0) + 1
        kept.append([speaker, text])
    return kept


def as_row(row: dict) -> dict:
    """An SPC row as a dataset row: its profiles and its turns as messages."""
    return {"profiles": row["profiles"], "messages": [{"speaker": s, "content": t} for s, t in row["turns"]]}


def held_out_rows(path: Path, limit: int, seed: int) -> list[dict]:
    """A seeded sample of an SPC CSV's held-out part (never trained on), as dataset rows."""
    from convoforge.critics.faithfulness_data import split_of

    held_out = [r for r in read_spc(path) if split_of(r) == "test" and r["turns"]]
    return [as_row(r) for r in random.Random(seed).sample(held_out, min(limit, len(held_out)))]


def read_spc(path: Path, limit: int | None = None) -> list[dict]:
    """Rows of a Synthetic-Persona-Chat CSV as {profiles, turns} examples."""
    with reading(path, "a Synthetic-Persona-Chat CSV"), open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not set(SPC_COLUMNS) <= set(reader.fieldnames):
            raise ConvoforgeError(
                f"{path} is not a Synthetic-Persona-Chat CSV (needs columns {', '.join(SPC_COLUMNS)})"
            )
        rows = []
        for row in reader:
            rows.append(
                {
                    "profiles": {
                        "User 1": [a.strip() for a in row[SPC_COLUMNS[0]].splitlines() if a.strip()],
                        "User 2": [a.strip() for a in row[SPC_COLUMNS[1]].splitlines() if a.strip()],
                    },
                    "turns": [list(t) for t in parse_transcript(row[SPC_COLUMNS[2]])],
                }
            )
            if limit and len(rows) >= limit:
                break
    return rows
