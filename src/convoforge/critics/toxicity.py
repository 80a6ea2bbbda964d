"""Toxicity: a lexicon matcher (fast, offline) and an LLM judge."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, Field

from convoforge.critics.base import Candidate, Critic, Verdict, llm_filter_verdict
from convoforge.critics.prompts import TOXICITY
from convoforge.llm.base import ChatModel


@cache
def lexicon_pattern(path: str | None = None) -> re.Pattern[str]:
    """A word-boundary regex over the terms file (the packaged list by default)."""
    text = (
        Path(path).read_text()
        if path
        else resources.files("convoforge.critics").joinpath("data/toxic_terms.txt").read_text()
    )
    terms = [t.strip().lower() for t in text.splitlines() if t.strip() and not t.startswith("#")]
    alts = [re.escape(t[:-1]) + r"\w*" if t.endswith("*") else re.escape(t) for t in terms]
    return re.compile(r"\b(?:" + "|".join(alts) + r")\b", re.IGNORECASE)


class ToxicityExpert(Critic):
    """Drops conversations in which any message matches the toxic-terms lexicon."""

    name = "toxicity"
    role = "filter"
    reads = ("turns",)
    higher_is_better = False

    def __init__(self, terms_file: str | None = None) -> None:
        self.pattern = lexicon_pattern(terms_file)
        self.description = "lexicon of insults, threats and slurs (word boundaries)"

    def judge_one(self, candidate: Candidate, llm: ChatModel) -> Verdict:
        """Fail on the first toxic term found; the score is the share of toxic messages."""
        hits = [(t.speaker, m.group(0)) for t in candidate.turns if (m := self.pattern.search(t.content))]
        share = len(hits) / max(len(candidate.turns), 1)
        return Verdict(
            critic=self.name,
            passed=not hits,
            score=share,
            label="toxic" if hits else "clean",
            rationale="; ".join(f"{s}: {w!r}" for s, w in hits[:5]) or "no toxic term",
        )


class ToxicAnswer(BaseModel):
    """The LLM toxicity answer."""

    toxic: bool
    reason: str = Field("", max_length=160)


class LLMToxicityExpert(Critic):
    """Asks the LLM whether any message is toxic."""

    name = "toxicity_llm"
    role = "filter"
    reads = ("turns",)
    higher_is_better = False
    description = "LLM judge: is any message toxic?"

    async def judge_one(self, candidate: Candidate, llm: ChatModel) -> Verdict:
        """Ask, parse, and fail the candidate when the judge says toxic."""
        prompt = TOXICITY.format(conversation=candidate.transcript())
        return await llm_filter_verdict(
            self.name, llm, prompt, ToxicAnswer, "toxic", ("clean", "toxic"), score_flag=True
        )
