"""Stage hygiene: what a persona attribute or a generated conversation must be before it reaches the critics.

Every check returns a reason (a short rule name, then details in brackets) or None, so each rejection is logged
with why. The rules were set against the real Synthetic-Persona-Chat conversations (`eval personas` reports the
reference's own rates beside the generated ones): a real conversation repeats short turns ("Bye!") and now and
then lets one speaker talk twice, so only long turns count as loops and one double turn is allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from itertools import pairwise

from rapidfuzz import fuzz

from convoforge.agents.persona import prompts
from convoforge.datasets.metrics import recited, tokens

NGRAM = 4
# words of the pipeline's own vocabulary that a persona sentence or a real conversation has no reason to say
META = re.compile(
    r"\b(?:(?:personas?|user ?[12]|statements?|prompt|as an ai|language model|"
    r"following (?:statements|persona)|turns? for each user)\b|conversation:)",  # no \b after a colon
    re.IGNORECASE,
)
# the model describing itself instead of a person (none of SPC's 494 attributes matches)
SELF = re.compile(r"\b(AI|artificial intelligence|chatbot|virtual assistant|assist (?:human )?users)\b")
INSTRUCTION = re.compile(r"^(answer|write|imagine|do not|don't|please|respond|add|now|generate|create)\b", re.I)
FIRST_PERSON = {"I", "My", "I'm", "I've", "I'd", "I'll", "Im"}
# template slots and stage directions that SPC's own source generator left in its conversations ("[user 1's name]",
# "(name)", "[they walk together.]"; 41% of its conversations), and that a model trained on them
# writes: no person types them. Any square-bracketed text; a short parenthesis naming a slot.
PLACEHOLDER = re.compile(
    r"\[[^\]\n]{1,60}\]|\((?:[\w']+\s){0,2}(?:name|user ?\d?|username|city|country|hometown|location|age)"
    r"(?:\s[\w']+){0,1}\)",
    re.IGNORECASE,
)


@cache
def prompt_ngrams() -> frozenset[tuple[str, ...]]:
    """Word 4-grams of every prompt template of the persona pipeline (format fields left out)."""
    grams: set[tuple[str, ...]] = set()
    for name in dir(prompts):
        text = getattr(prompts, name)
        if name.isupper() and isinstance(text, str):
            for part in re.split(r"\{[a-z0-9_]+\}", text):
                toks = tokens(part)
                grams.update(tuple(toks[i : i + NGRAM]) for i in range(len(toks) - NGRAM + 1))
    return frozenset(grams)


def _grams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    toks = tokens(text)
    return {tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)}


def prompt_leak(text: str) -> str | None:
    """Why `text` carries the pipeline's own prompt text (a template 4-gram or a meta word), else None."""
    if shared := _grams(text) & prompt_ngrams():
        return f"prompt text ({' '.join(sorted(shared)[0])!r})"
    if m := META.search(text):
        return f"prompt text ({m.group(0)!r})"
    return None


# where a finished sentence ends inside a turn: its mark, any closing quotes or brackets, then a space
SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s)")


def placeholder(text: str) -> str | None:
    """Why `text` carries a template slot or a stage direction ("[name]", "(user 2's name)"), else None."""
    if m := PLACEHOLDER.search(text):
        return f"placeholder ({m.group(0)!r})"
    return None


def unfinished(text: str) -> bool:
    """Whether a turn stops mid-sentence: it ends in a word, a comma or a colon, not a mark.

    Real conversations rarely do (SPC: 77 of 27,704 turns, mostly a last "Bye" or "Sounds good"); the
    generator's conversations do when the token limit stops them (5 of 354 that stopped on their own did, mostly
    on a lead-in such as "Conversation:").
    """
    text = text.rstrip()
    return not text or text[-1].isalnum() or text[-1] in ",;:-\u2013\u2014("


def finish_last_turn(turns: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Cut a last turn the token limit stopped mid-sentence back to its last finished sentence; drop it if none.

    What is cut is what a generation stopped by `max_tokens` leaves: half a sentence ("I'm going to Europe"),
    the start of the next label ("... my blog. User") or a lead-in to more text ("... Conversation:").
    """
    if not turns or not unfinished(turns[-1][1]):
        return turns
    speaker, text = turns[-1]
    ends = [m.end() for m in SENTENCE_END.finditer(text)]
    return [*turns[:-1], (speaker, text[: ends[-1]])] if ends else turns[:-1]


def leaks(turns: list[tuple[str, str]]) -> bool:
    """Whether any turn of a conversation carries prompt text (`prompt_leak`)."""
    return any(prompt_leak(text) for _, text in turns)


def attribute_problem(text: str, query: str | None = None) -> str | None:
    """Why `text` is not one short first-person sentence about the speaker, else None."""
    words = text.split()
    if not words:
        return "empty"
    if words[0] not in FIRST_PERSON:
        return "not first person (starts with I or My)"
    if not 3 <= len(words) <= 25:
        return f"length ({len(words)} words, 3-25)"
    if "?" in text:
        return "a question"
    if re.search(r"[.!;]\s+\S", text.strip()):
        return "more than one sentence"
    if INSTRUCTION.match(text) or re.search(r"\b(answer with|do not repeat|starts with)\b", text, re.I):
        return "an instruction"
    if leak := prompt_leak(text):
        return leak
    if m := SELF.search(text):
        return f"the model, not a person ({m.group(0)!r})"
    if query and (quoted := _grams(text) & _grams(query)):
        return f"quotes the query ({' '.join(sorted(quoted)[0])!r})"
    return None


def question_problem(text: str) -> str | None:
    """Why an induced or bootstrapped persona question is unusable (prompt text), else None."""
    return prompt_leak(text)


@dataclass(frozen=True)
class Limits:
    """Conversation hygiene thresholds (checked against the real SPC conversations, see the module doc)."""

    loop_min_words: int = 5
    echo_min_words: int = 4
    fuzzy_min_words: int = 10
    near_duplicate: float = 90.0
    max_double_turns: int = 1
    recitation_cap: float = 0.34
    max_words: int = 80
    small_talk_words: int = 5


def _norm(text: str) -> str:
    return " ".join(tokens(text))


def _same(a: str, b: str, limits: Limits) -> bool:
    """Equal words; for long turns, near-equal (short questions differ in one word: favorite food / color)."""
    if a == b:
        return True
    long = min(len(a.split()), len(b.split())) >= limits.fuzzy_min_words
    return long and fuzz.ratio(a, b) >= limits.near_duplicate


def loop(turns: list[tuple[str, str]], limits: Limits = Limits()) -> str | None:
    """A long turn said again by its speaker, a block of turns repeated, or a turn said three times in a row.

    No real SPC conversation says one turn three times in a row; 4.6% say a short one ("me too") three times.
    """
    keys = [_norm(t) for _, t in turns]
    for i in range(2, len(keys)):
        if keys[i] and keys[i] == keys[i - 1] == keys[i - 2]:
            return f"loop (turns {i - 1}-{i + 1} say the same)"
    for i, key in enumerate(keys):
        if len(key.split()) < limits.loop_min_words:
            continue
        for j in range(i):
            if turns[j][0] == turns[i][0] and _same(key, keys[j], limits):
                return f"loop (turn {i + 1} repeats turn {j + 1})"
    blocks: dict[tuple[str, str], int] = {}
    for i in range(len(keys) - 1):
        block = (keys[i], keys[i + 1])
        if block in blocks and blocks[block] < i - 1:
            return f"loop (turns {i + 1}-{i + 2} repeat turns {blocks[block] + 1}-{blocks[block] + 2})"
        blocks.setdefault(block, i)
    return None


def _echoes(i: int, turns: list[tuple[str, str]], keys: list[str], limits: Limits) -> bool:
    """Turn i says (near) word for word what the other speaker just said (exact from 4 words, near from 10)."""
    if not i or turns[i][0] == turns[i - 1][0]:
        return False
    words = len(keys[i].split())
    exact = words >= limits.echo_min_words and keys[i] == keys[i - 1]
    return exact or (words >= limits.loop_min_words and _same(keys[i], keys[i - 1], limits))


def copying(turns: list[tuple[str, str]], limits: Limits = Limits()) -> str | None:
    """A speaker echoing the other speaker's turn just before (3 of 997 real SPC conversations do, at 4+ words)."""
    keys = [_norm(t) for _, t in turns]
    for i in range(1, len(turns)):
        if _echoes(i, turns, keys, limits):
            return f"copying (turn {i + 1} echoes turn {i})"
    return None


def small_talk(turns: list[tuple[str, str]], limits: Limits = Limits()) -> str | None:
    """Nothing said: no turn over `small_talk_words` words ("Hello!" / "Nice to meet you too!").

    Every one of SPC's 997 real conversations has a turn of 9 words or more.
    """
    if turns and max(len(t.split()) for _, t in turns) <= limits.small_talk_words:
        return f"small talk only (no turn over {limits.small_talk_words} words)"
    return None


def first_degenerate(turns: list[tuple[str, str]], limits: Limits = Limits()) -> int | None:
    """Index of the first turn that starts a loop or echoes the turn before (None: no such turn)."""
    keys = [_norm(t) for _, t in turns]
    blocks: dict[tuple[str, str], int] = {}
    for i, key in enumerate(keys):
        if i >= 2 and key and key == keys[i - 1] == keys[i - 2]:
            return i - 1
        long = len(key.split()) >= limits.loop_min_words
        if long and any(turns[j][0] == turns[i][0] and _same(key, keys[j], limits) for j in range(i)):
            return i
        if _echoes(i, turns, keys, limits):
            return i
        if i + 1 < len(keys):
            block = (key, keys[i + 1])
            if block in blocks and blocks[block] < i - 1:
                return i
            blocks.setdefault(block, i)
    return None


def trim_degenerate_tail(turns: list[tuple[str, str]], min_turns: int, limits: Limits = Limits()) -> int:
    """How many turns to keep: all, or those before a loop or echo when they still give each speaker min_turns."""
    cut = first_degenerate(turns, limits)
    if cut is None:
        return len(turns)
    kept = [s for s, _ in turns[:cut]]
    return cut if min(kept.count("User 1"), kept.count("User 2")) >= min_turns else len(turns)


def recitations(turns: list[tuple[str, str]], profiles: dict[str, list[str]], min_words: int = 3) -> int:
    """How many turns contain one of their own speaker's persona sentences word for word."""
    return sum(recited([text], profiles.get(speaker, []), min_words) for speaker, text in turns)


def conversation_problems(
    turns: list[tuple[str, str]], profiles: dict[str, list[str]], limits: Limits = Limits()
) -> list[str]:
    """Every hygiene rule a parsed conversation breaks (empty: clean)."""
    problems = []
    doubles = sum(a == b for (a, _), (b, _) in pairwise(turns))
    if doubles > limits.max_double_turns:
        problems.append(f"speakers do not alternate ({doubles} double turns)")
    for check in (loop, copying, small_talk):
        if found := check(turns, limits):
            problems.append(found)
    if turns and (n := recitations(turns, profiles)) / len(turns) > limits.recitation_cap:
        problems.append(f"recitation ({n} of {len(turns)} turns copy a persona sentence)")
    for check in (prompt_leak, placeholder):
        for i, (_, text) in enumerate(turns):
            if found := check(text):
                problems.append(f"{found.split(' (')[0]} (turn {i + 1}: {found.split(' (', 1)[1]}")
                break
    if long := [i + 1 for i, (_, t) in enumerate(turns) if len(t.split()) > limits.max_words]:
        problems.append(f"turn bounds (turn {long[0]} has over {limits.max_words} words)")
    return problems


def clean_conversation(messages: list[dict], profiles: dict[str, list[str]]) -> bool:
    """No loop or copying, no prompt or template text, no placeholder, not small talk only: fit to imitate."""
    flags = conversation_flags(messages, profiles)
    return not (flags["degenerate"] or flags["prompt_leak"] or flags["placeholder"] or flags["small_talk"])


def conversation_flags(messages: list[dict], profiles: dict[str, list[str]], limits: Limits = Limits()) -> dict:
    """Per-conversation flags for reports (degenerate: a loop or copying) and the count of recited turns."""
    turns = [(m["speaker"], m["content"]) for m in messages]
    return {
        "degenerate": bool(loop(turns, limits) or copying(turns, limits)),
        "recited_turns": recitations(turns, profiles),
        "turns": len(turns),
        "prompt_leak": leaks(turns),
        "placeholder": any(placeholder(text) for _, text in turns),
        "unfinished": bool(turns) and unfinished(turns[-1][1]),
        "small_talk": bool(small_talk(turns, limits)),
    }
