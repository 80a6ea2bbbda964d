"""Real seeker phrasing from ReDial training dialogues, slot-filled for a simulated user's intent and goal."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from convoforge.datasets.catalog import REDIAL_DIALOGUES, read_jsonl
from convoforge.errors import ConvoforgeError

_MENTION = re.compile(r"@\w+")
GENRE_WORDS = [
    "horror", "comedy", "comedies", "action", "drama", "dramas", "romance", "romantic", "thriller", "thrillers",
    "sci-fi", "sci fi", "scifi", "science fiction", "animated", "animation", "documentary", "documentaries", "family",
    "fantasy", "mystery", "crime", "war", "western", "westerns", "musical", "musicals", "adventure", "superhero",
]  # fmt: skip
_GENRE = re.compile(r"\b(" + "|".join(re.escape(g) for g in GENRE_WORDS) + r")\b", re.I)
INFORMATIVE = {"ask_for_recommendations", "give_feedback", "express_dissatisfaction"}
# first match wins, in this order; what is left after the opening turns is feedback
CUES: list[tuple[str, re.Pattern]] = [
    ("leave", re.compile(r"\b(bye|goodbye|good night|have a (good|great|nice) (day|night|one))\b", re.I)),
    (
        "accept",
        re.compile(r"\b(thanks?|thank you|sounds (good|great|interesting)|i'?ll (check|watch|look)|perfect)\b", re.I),
    ),
    (
        "ask_for_explanation",
        re.compile(
            r"\b(what'?s it about|what is it about|who'?s in it|who is in it|tell me (more|about)|is it)\b", re.I
        ),
    ),
    (
        "express_dissatisfaction",
        re.compile(
            r"\b(not (really|a fan|my|into)|don'?t (like|care|really)|didn'?t like|nope|not interested)\b", re.I
        ),
    ),
    (
        "ask_for_recommendations",
        re.compile(r"\b(looking for|recommend|suggest|any (ideas|suggestions)|in the mood|something like)\b", re.I),
    ),
]


def intent_of(text: str, seeker_turn: int) -> str | None:
    """The simulator intent a real seeker utterance would serve, by cue words and position; None: unusable."""
    for intent, cue in CUES:
        if cue.search(text):
            return intent
    if seeker_turn < 2:
        return "ask_for_recommendations"
    return "give_feedback" if ("{liked}" in text or re.search(r"\b(seen|liked|loved|enjoyed)\b", text, re.I)) else None


@dataclass
class SeekerStyle:
    """Templates made from real seeker utterances: films become {liked}, the first genre word {genre}."""

    by_intent: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_dialogues(cls, paths: list[Path], min_words: int = 3, max_words: int = 30) -> SeekerStyle:
        """Harvest seeker (initiator) utterances of ReDial-format dialogues."""
        style = cls()
        for path in paths:
            if not path.is_file():
                raise ConvoforgeError(f"no training dialogues at {path}")
            for n, d in enumerate(read_jsonl(path, REDIAL_DIALOGUES), 1):
                if "initiatorWorkerId" not in d or not isinstance(d.get("messages"), list):
                    raise ConvoforgeError(f"{path}: dialogue {n} is not ReDial format (needs 'initiatorWorkerId')")
                turn = 0
                for m in d["messages"]:
                    if m.get("senderWorkerId") != d["initiatorWorkerId"]:
                        continue
                    text = str(m.get("text", "")).strip()
                    if len(_MENTION.findall(text)) > 1 or "http" in text or "{" in text or "}" in text:
                        turn += 1
                        continue
                    text = _MENTION.sub("{liked}", text, count=1)
                    text = _GENRE.sub("{genre}", text, count=1)
                    if min_words <= len(text.split()) <= max_words and (intent := intent_of(text, turn)):
                        style.by_intent.setdefault(intent, []).append(text)
                    turn += 1
        if not style.by_intent:
            raise ConvoforgeError(f"no usable seeker utterance in {', '.join(map(str, paths))}")
        return style

    def utter(self, intent: str, rng: random.Random, genre: str, liked: str = "") -> str | None:
        """A real seeker's words for this intent with the user's own goal genre and liked film; None if none fits."""
        options = [t for t in self.by_intent.get(intent, []) if liked or "{liked}" not in t]
        if intent in INFORMATIVE:  # a request or feedback says something of the goal: a genre or a liked film
            options = [t for t in options if "{genre}" in t or "{liked}" in t]
        if not options:
            return None
        return rng.choice(options).replace("{liked}", liked).replace("{genre}", genre)

    def sizes(self) -> dict[str, int]:
        """Templates per intent."""
        return {k: len(v) for k, v in sorted(self.by_intent.items())}
