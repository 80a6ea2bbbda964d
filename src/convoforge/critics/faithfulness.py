"""Persona faithfulness: an embedding scorer and an LLM contradiction judge."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from convoforge.critics.base import Candidate, Critic, Verdict, llm_filter_verdict
from convoforge.critics.prompts import FAITHFULNESS
from convoforge.llm.base import ChatModel
from convoforge.llm.embeddings import EMBEDDED_EMBEDDER, Embedder, load_embedder

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
ADAPTER = "faithfulness_lora"  # the shipped scorer: a LoRA on MiniLM in critics/models (see its card)


def shipped_scorer() -> Path:
    """Folder of the shipped faithfulness adapter."""
    from convoforge.critics.trained import models_dir

    return models_dir() / ADAPTER


@cache
def scorer_card() -> dict:
    """The shipped scorer's card (data, command, threshold, figures); empty when it is missing."""
    path = shipped_scorer() / "convoforge_card.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def sentences(utterances: list[str]) -> list[str]:
    """Split utterances into sentences (the units an attribute can be matched to)."""
    return [s for u in utterances for s in _SENTENCE.split(u.strip()) if len(s.split()) >= 2] or [
        u for u in utterances if u.strip()
    ]


def attribute_scores(
    embedder: Embedder, attributes: list[str], utterances: list[str], unit: str = "sentence"
) -> np.ndarray:
    """Per attribute: best cosine to any sentence the speaker said (unit=sentence) or to all of it (text)."""
    units = sentences(utterances) if unit == "sentence" else [" ".join(u for u in utterances if u.strip())]
    units = [u for u in units if u]
    if not attributes:
        return np.zeros(0, dtype=np.float32)
    if not units:
        return np.zeros(len(attributes), dtype=np.float32)
    sims = embedder.embed(attributes) @ embedder.embed(units).T
    return sims.max(axis=1)


def faithfulness_score(
    embedder: Embedder, profiles: dict[str, list[str]], turns: dict[str, list[str]], unit: str = "sentence"
) -> float:
    """Mean over both speakers' attributes of how well each is reflected in what they said."""
    scores = [attribute_scores(embedder, attrs, turns.get(speaker, []), unit) for speaker, attrs in profiles.items()]
    flat = np.concatenate(scores) if scores else np.zeros(0)
    return float(flat.mean()) if flat.size else 0.0


class FaithfulnessExpert(Critic):
    """Drops conversations that ignore their profiles (embedding similarity below threshold).

    By default the embedder is MiniLM with the shipped LoRA adapter, tuned on the SPC training
    part, matching each attribute against all its speaker says, with the threshold calibrated
    for it (`critics/models/faithfulness_lora/convoforge_card.json`); `tuned=False` is the
    untuned MiniLM per sentence at 0.35, and `embedder=DIR` any tuned scorer.
    """

    name = "faithfulness"
    role = "filter"
    reads = ("profiles", "turns")

    def __init__(
        self,
        threshold: float | None = None,
        embedder: str = EMBEDDED_EMBEDDER,
        unit: str | None = None,
        tuned: bool = True,
    ) -> None:
        self.tuned = tuned
        self.embedder, self._threshold, self._unit = embedder, threshold, unit

    @property
    def shipped(self) -> bool:
        """Whether the shipped adapter is in use."""
        return self.tuned and self.embedder == EMBEDDED_EMBEDDER

    @property
    def threshold(self) -> float:
        """The score below which a candidate is dropped."""
        if self._threshold is not None:
            return self._threshold
        return float(scorer_card().get("threshold", 0.35)) if self.shipped else 0.35

    @threshold.setter
    def threshold(self, value: float) -> None:
        self._threshold = value

    @property
    def unit(self) -> str:
        """What an attribute is matched against: each sentence, or the speaker's whole text."""
        return self._unit or ("text" if self.shipped else "sentence")

    @unit.setter
    def unit(self, value: str) -> None:
        self._unit = value

    @property
    def spec(self) -> str:
        """The embedder spec actually loaded."""
        return f"{EMBEDDED_EMBEDDER}+adapter={shipped_scorer()}" if self.shipped else self.embedder

    @property
    def description(self) -> str:
        """What this expert checks, with its settings."""
        how = "tuned LoRA (shipped)" if self.shipped else self.embedder
        return f"attribute-to-utterance similarity ({how}, per {self.unit}) >= {self.threshold:.3f}"

    def judge_one(self, candidate: Candidate, llm: ChatModel) -> Verdict:
        """Score the candidate and pass it when the score reaches the threshold."""
        embedder = load_embedder(self.spec)
        turns = {s: candidate.utterances(s) for s in candidate.profiles}
        score = faithfulness_score(embedder, candidate.profiles, turns, self.unit)
        passed = score >= self.threshold
        return Verdict(
            critic=self.name,
            score=score,
            passed=passed,
            label="faithful" if passed else "unfaithful",
            rationale=f"mean attribute similarity {score:.3f} vs threshold {self.threshold:.3f}",
        )


class Contradiction(BaseModel):
    """The LLM faithfulness answer."""

    contradicts: bool
    reason: str = Field("", max_length=160)


class LLMFaithfulnessExpert(Critic):
    """The paper's faithfulness expert: asks the LLM whether the conversation contradicts a profile."""

    name = "faithfulness_llm"
    role = "filter"
    reads = ("profiles", "turns")
    description = "LLM judge with faithful/unfaithful examples: does it contradict a profile?"

    async def judge_one(self, candidate: Candidate, llm: ChatModel) -> Verdict:
        """Ask, parse, and fail the candidate on a contradiction."""
        profiles = "\n".join(f"Profile of {s}: {' '.join(a)}" for s, a in candidate.profiles.items())
        prompt = FAITHFULNESS.format(profiles=profiles, conversation=candidate.transcript())
        return await llm_filter_verdict(
            self.name, llm, prompt, Contradiction, "contradicts", ("faithful", "unfaithful")
        )
