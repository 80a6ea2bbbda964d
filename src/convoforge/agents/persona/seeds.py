"""Seed persona attributes and example conversations: SPC CSV, a text file, or the shipped set."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from convoforge.agents.persona.hygiene import clean_conversation
from convoforge.critics.faithfulness_data import split_of
from convoforge.datasets.spc import as_row, read_spc
from convoforge.errors import ConvoforgeError, reading


@dataclass
class Seeds:
    """Persona attributes to start from and few-shot example conversations."""

    attributes: list[str]
    examples: list[dict]
    source: str


def shipped_examples() -> list[dict]:
    """The example conversations that come with convoforge."""
    text = resources.files("convoforge.agents.persona").joinpath("data/seed_conversations.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def load_seeds(path: str | Path | None, max_examples: int | None = 50) -> Seeds:
    """Load seeds from an SPC CSV, a text file (one attribute a line) or the shipped set (None: every example)."""
    if path is None:
        text = resources.files("convoforge.agents.persona").joinpath("data/seed_personas.txt").read_text()
        attrs = [a.strip() for a in text.splitlines() if a.strip()]
        return Seeds(attrs, shipped_examples(), "convoforge shipped seed set")
    path = Path(path)
    if not path.is_file():
        raise ConvoforgeError(f"no seed file at {path}")
    with reading(path, "a Synthetic-Persona-Chat CSV or one persona attribute a line"):
        return _load_file(path, max_examples)


def _load_file(path: Path, max_examples: int | None) -> Seeds:
    """An SPC CSV or a text file of attributes."""
    if path.suffix.lower() == ".csv":
        rows = read_spc(path)
        attrs = list(dict.fromkeys(a for r in rows for p in r["profiles"].values() for a in p))
        # few-shot examples from the train part only: the held-out 40% is what `eval personas` compares with;
        # and only clean ones: about half of SPC's (294 of 605 train rows) carry its generator's template text, a
        # "[user 1's name]" slot or a loop, which an example would teach and the pipeline's hygiene rejects
        train = [r for r in rows if r["turns"] and split_of(r) == "train"]
        examples = [r for r in train if clean_conversation(**as_row(r))][:max_examples]
        return Seeds(attrs, examples or shipped_examples(), f"Synthetic-Persona-Chat CSV {path.name}")
    attrs = list(dict.fromkeys(a.strip() for a in path.read_text(encoding="utf-8").splitlines() if a.strip()))
    if len(attrs) < 10:
        raise ConvoforgeError(f"{path} has {len(attrs)} persona attributes; at least 10 are needed")
    return Seeds(attrs, shipped_examples(), f"attribute file {path.name}")
