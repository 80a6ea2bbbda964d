"""Seed persona attributes and example conversations: SPC CSV, a text file, or the shipped set."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from convoforge.errors import ConvoforgeError

SPC_COLUMNS = ("user 1 personas", "user 2 personas", "Best Generated Conversation")
_TURN = re.compile(r"^\s*(User ?[12])\s*:\s*(.*)$", re.IGNORECASE)


@dataclass
class Seeds:
    """Persona attributes to start from and few-shot example conversations."""

    attributes: list[str]
    examples: list[dict]
    source: str


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


def read_spc(path: Path, limit: int | None = None) -> list[dict]:
    """Rows of a Synthetic-Persona-Chat CSV as {profiles, turns} examples."""
    with open(path, newline="", encoding="utf-8") as f:
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


def shipped_examples() -> list[dict]:
    """The example conversations that come with convoforge."""
    text = resources.files("convoforge.agents.persona").joinpath("data/seed_conversations.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def load_seeds(path: str | Path | None, max_examples: int = 50) -> Seeds:
    """Load seeds from an SPC CSV, a text file (one attribute a line) or the shipped set."""
    if path is None:
        text = resources.files("convoforge.agents.persona").joinpath("data/seed_personas.txt").read_text()
        attrs = [a.strip() for a in text.splitlines() if a.strip()]
        return Seeds(attrs, shipped_examples(), "convoforge shipped seed set")
    path = Path(path)
    if not path.is_file():
        raise ConvoforgeError(f"no seed file at {path}")
    if path.suffix.lower() == ".csv":
        rows = read_spc(path)
        attrs = list(dict.fromkeys(a for r in rows for p in r["profiles"].values() for a in p))
        examples = [r for r in rows if r["turns"]][:max_examples]
        return Seeds(attrs, examples or shipped_examples(), f"Synthetic-Persona-Chat CSV {path.name}")
    attrs = list(dict.fromkeys(a.strip() for a in path.read_text(encoding="utf-8").splitlines() if a.strip()))
    if len(attrs) < 10:
        raise ConvoforgeError(f"{path} has {len(attrs)} persona attributes; at least 10 are needed")
    return Seeds(attrs, shipped_examples(), f"attribute file {path.name}")
