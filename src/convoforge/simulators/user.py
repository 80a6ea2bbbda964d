"""A controllable simulated user: session variables, per-turn intents, leak-free utterances."""

from __future__ import annotations

import random
import re
from typing import Literal

from pydantic import BaseModel, Field

from convoforge.datasets.catalog import Item
from convoforge.llm import GenParams, draw_seed
from convoforge.llm.base import ChatModel
from convoforge.simulators import prompts
from convoforge.simulators.leak import remove_leaks
from convoforge.simulators.style import SeekerStyle

# an LLM turn out of the seeker's role: the assistant speaking, the prompt echoed, a placeholder, a list, a header
_OUT_OF_ROLE = re.compile(
    r"\b(?:as an ai|i'?m an ai|i am an ai|language model|helpful (?:ai|assistant)|how (?:can|may) i (?:help|assist)"
    r"|i'?m here to help|welcome to|i (?:can )?recommend|here (?:are|is) (?:some|a few)|i'?m (?:just )?a (?:movie )?"
    r"recommender|(?:your|my|this) (?:message|response)|the movie you secretly want|prompt|pretend|role-?play)\b"
    r"|\[[^\]]*\]|^\s*\d+\.\s|^\s*dear\b|^\s*you(?:'re| are) a\b|[:,]\s*$",
    re.I,
)
_ROLE_PREFIX = re.compile(r"^\s*(?:user|me|seeker)\s*:\s*", re.I)


def in_role(text: str) -> str:
    """An LLM user turn without a role prefix ("User: ..."), or "" when it speaks out of the seeker's role."""
    text = _ROLE_PREFIX.sub("", text).strip()
    return "" if _OUT_OF_ROLE.search(text) else text


Intent = Literal[
    "ask_for_recommendations", "give_feedback", "ask_for_explanation", "express_dissatisfaction", "accept", "leave"
]


class UserControls(BaseModel):
    """Session-level variables, hidden from the recommender and kept as labels."""

    profile: str = "a film fan who likes a good story"
    targets: list[str] = Field(default_factory=list, description="target item ids")
    liked: list[str] = Field(default_factory=list, description="item ids the user liked before and may name")
    patience: int = 5
    verbosity: Literal["terse", "normal", "chatty"] = "normal"
    knowledge: Literal["novice", "expert"] = "novice"
    seed: int = 0


def choose_intent(controls: UserControls, turn: int, recommended: list[str], rng: random.Random) -> Intent:
    """The turn's intent: accept a hit, leave when patience runs out, otherwise ask or push back."""
    if set(recommended) & set(controls.targets):
        return "accept"
    if turn >= controls.patience:
        return "leave"
    if turn == 0 or not recommended:
        return "ask_for_recommendations"
    return rng.choice(["give_feedback", "express_dissatisfaction", "ask_for_explanation", "give_feedback"])


def describe(item: Item, knowledge: str) -> str:
    """What the user knows of the target: metadata, never the title."""
    parts = [f"genre: {item.fields.get('genre', 'unknown')}", f"plot: {item.fields.get('plot', '')}"]
    if knowledge == "expert":
        parts += [f"director: {item.fields.get('director', '')}", f"actors: {item.fields.get('star', '')}"]
    return "; ".join(p for p in parts if not p.endswith(": "))


def goal_genre(item: Item) -> str:
    """The first catalogue genre of a user's goal ("good" when it has none), for the user's own words."""
    return (item.fields.get("genre") or "good").split(",")[0].strip()


def template_utterance(
    intent: Intent, target: Item, first_rec: str, knowledge: str, liked: str = "", variant: int = 0
) -> str:
    """IEvaLM's attribute mode: the answer comes from the target's metadata.

    A user who liked a film (`liked`, from a rating history or related to the goal) names that film and the
    target's genre or lead actor instead of quoting the target's plot, as ReDial seekers do; `variant` picks
    one of the phrasings.
    """
    genre = goal_genre(target)
    a_genre = ("an " if genre[:1].lower() in "aeiou" else "a ") + genre
    star = target.fields.get("star", "").split(",")[0].strip()
    if liked and intent in prompts.TEMPLATES_LIKED:
        options = [t for t in prompts.TEMPLATES_LIKED[intent] if star or "{star}" not in t]
        return options[variant % len(options)].format(genre=genre, a_genre=a_genre, liked=liked, star=star)
    plot = (target.fields.get("plot") or "with a good story").split(".")[0].strip()
    plot = plot[0].lower() + plot[1:] if plot else "with a good story"
    people = ""
    if knowledge == "expert" and target.fields.get("director"):
        people = f" by {target.fields['director'].split(',')[0]}"
    elif target.fields.get("star"):
        people = f" with {target.fields['star'].split(',')[0]}"
    return prompts.TEMPLATES[intent].format(
        genre=genre,
        a_genre=a_genre,
        plot=plot,
        plot_cap=plot.capitalize() + ".",
        people=people,
        first=first_rec or "that one",
    )


class SimulatedUser:
    """Writes the user's turns with an LLM (or templates), never naming a target title."""

    def __init__(
        self,
        controls: UserControls,
        targets: list[Item],
        llm: ChatModel | None = None,
        liked: list[Item] | None = None,
        style: SeekerStyle | None = None,
    ) -> None:
        self.controls, self.targets, self.llm, self.liked = controls, targets, llm, liked or []
        self.style = style  # real seekers' phrasing (from training dialogues) instead of the fixed templates
        self.rng = random.Random(controls.seed)

    def _examples(self, intent: str, target: Item, n: int = 3) -> str:
        """Few-shot lines of real seekers' words for this intent (none without a style)."""
        if self.style is None:
            return ""
        genre = goal_genre(target).lower()
        liked = self.liked[0].name if self.liked else ""
        lines = list(dict.fromkeys(x for _ in range(n) if (x := self.style.utter(intent, self.rng, genre, liked))))
        return prompts.EXAMPLES.format(lines="\n".join(f"- {x}" for x in lines)) if lines else ""

    async def utter(self, turn: int, messages: list[dict], recommended: list[str], rec_names: list[str]) -> dict:
        """The next user message with its labels (intent, leak-filter counts)."""
        intent = choose_intent(self.controls, turn, recommended, self.rng)
        target = self.targets[0]
        hit = next((n for i, n in zip(recommended, rec_names, strict=False) if i in self.controls.targets), "")
        first = hit or (rec_names[0] if rec_names else "")
        text, source = "", "template"
        if self.llm is not None and intent not in {"accept", "leave"}:
            prompt = prompts.USER.format(
                profile=self.controls.profile,
                target=describe(target, self.controls.knowledge),
                liked=", ".join(it.name for it in self.liked) or "(none given)",
                verbosity=prompts.VERBOSITY[self.controls.verbosity],
                knowledge=prompts.KNOWLEDGE[self.controls.knowledge],
                conversation="\n".join(f"{m['role']}: {m['content']}" for m in messages[-6:]) or "(none yet)",
                intent=prompts.INTENTS[intent],
                examples=self._examples(intent, target),
            )
            params = GenParams(temperature=0.8, max_tokens=60, top_k=40, seed=draw_seed(self.rng))
            reply = await self.llm.achat(prompt, params)
            text, source = in_role(reply.text.strip().split("\n")[0]), "llm"
        titles = [t.name for t in self.targets]
        text, dropped = remove_leaks(text, titles)
        if not text and self.style is not None:
            liked = self.liked[turn % len(self.liked)].name if self.liked else ""
            genre = goal_genre(target)
            text, source = self.style.utter(intent, self.rng, genre, liked) or "", "seeker style"
            text, dropped = remove_leaks(text, titles)
        if not text:
            liked = self.liked[turn % len(self.liked)].name if self.liked else ""
            variant = self.rng.randrange(12) if liked else 0
            text = template_utterance(intent, target, first, self.controls.knowledge, liked, variant)
            source = "template"
            text, more = remove_leaks(text, titles) if intent != "accept" else (text, 0)
            dropped += more
            text = text or "I'd like something different, please."
        return {"role": "user", "content": text, "intent": intent, "source": source, "leaks_removed": dropped}
