"""A realism reward for RL: a discriminator's log-odds that a generated conversation is a real one.

The offline form of the paper's Turing test, turned into a reward (as a GAN's critic): a logistic regression on
the features `eval personas` judges realism with (mean MiniLM vector of the turns plus simple statistics),
fitted on a SPIN pairs export (`generate samples --real-chosen`): the real conversation of each train persona
pair against the policy's own samples in the same prompt. RLOO then moves the policy toward what the
discriminator reads as real; `eval personas --versus` measures the result with a fresh discriminator on the
held-out reference, so a policy cannot score there by fooling this one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from convoforge.agents.persona.context import PersonaContext
from convoforge.agents.persona.evaluate import conversation_features
from convoforge.agents.persona.stages import GenerationJob, parse_candidate
from convoforge.datasets.spc import parse_transcript
from convoforge.errors import ConvoforgeError
from convoforge.training.profile import completion_text

NEEDED = {"prompt", "profiles", "chosen", "rejected", "pair_id"}


def as_row(text: str, profiles: dict, ctx: PersonaContext) -> dict | None:
    """A generated transcript as the features' row; None when it does not parse or breaks a hygiene rule."""
    cand = parse_candidate(text, GenerationJob("r", 0, profiles), 0, ctx)
    if not cand.usable:
        return None
    return {"profiles": profiles, "messages": cand.messages()}


class RealismReward:
    """Log-odds of real from a discriminator fitted on real vs the policy's own conversations; a floor if unusable.

    A completion that does not parse or breaks a hygiene rule (loop, copying, prompt text) gets `floor`: one
    below the lowest score of any own sample the discriminator was fitted on, so no usable conversation scores
    under it. `accuracy` is the discriminator's cross-validated accuracy on what it was fitted on (folds split by
    persona pair): how much signal the reward carries (0.5: none).
    """

    def __init__(self, data: Path, min_turns: int = 3, seed: int = 0) -> None:
        from convoforge.datasets.discriminator import fit_discriminator
        from convoforge.llm.embeddings import load_embedder
        from convoforge.training.lora import load_split

        rows = load_split(data)
        if not NEEDED <= set(rows.column_names):
            raise ConvoforgeError(
                f"{data} has columns {rows.column_names}; the realism reward needs a real-vs-own pairs export "
                "(`convoforge generate samples --real-chosen`)"
            )
        self.ctx = PersonaContext(min_turns=min_turns)
        self.embedder = load_embedder()
        real_by_pair: dict[str, dict] = {}
        own, groups = [], []
        for r in rows:
            chosen, rejected = completion_text(r["chosen"]), completion_text(r["rejected"])
            turns = parse_transcript(chosen)
            if turns:
                messages = [{"speaker": s, "content": t} for s, t in turns]
                real_by_pair[r["pair_id"]] = {"profiles": r["profiles"], "messages": messages}
            row = as_row(rejected, r["profiles"], self.ctx)
            if row:
                own.append(row)
                groups.append(r["pair_id"])
        real = list(real_by_pair.values())
        if min(len(real), len(own)) < 6:
            raise ConvoforgeError(f"{data}: {len(real)} real and {len(own)} usable own conversations; need 6 each")
        x_real, x_own = conversation_features(self.embedder, real), conversation_features(self.embedder, own)
        self.model, self.accuracy = fit_discriminator(x_real, x_own, seed=seed, groups=groups)
        self.floor = float(self.model.decision_function(x_own).min()) - 1.0
        self.counts = {"real": len(real), "own": len(own)}
        self.__name__ = "realism"

    def scores(self, texts: list[str], profiles: list[dict]) -> list[float]:
        """The reward of each transcript written for its persona pair."""
        rows = [as_row(t, p, self.ctx) for t, p in zip(texts, profiles, strict=True)]
        usable = [r for r in rows if r]
        logits = iter(self.model.decision_function(conversation_features(self.embedder, usable)) if usable else [])
        return [float(next(logits)) if r else self.floor for r in rows]

    def __call__(self, prompts: list, completions: list, profiles: list, **_: Any) -> list[float]:
        """TRL reward-function signature: one float per completion."""
        return self.scores([completion_text(c) for c in completions], profiles)

    def describe(self) -> dict:
        """What the card and the training record say about the reward."""
        return {"reward": "realism", **self.counts, "discriminator": self.accuracy, "floor": round(self.floor, 4)}
