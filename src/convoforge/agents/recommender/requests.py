"""What a chat turn asks of the list: constraints the catalogue can express, feedback, and which card it means."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from convoforge.datasets.catalog import Catalog, Item

# words people use for a kind of film, mapped to catalogue genres (lower case)
MOODS = {
    "violent": ["action", "crime", "war", "horror", "thriller"],
    "violence": ["action", "crime", "war", "horror", "thriller"],
    "gory": ["horror"],
    "bloody": ["horror", "war", "crime"],
    "scary": ["horror"],
    "creepy": ["horror"],
    "dark": ["horror", "crime", "thriller"],
    "funny": ["comedy"],
    "romantic": ["romance"],
    "animated": ["animation"],
    "cartoon": ["animation"],
    "kids": ["family", "animation"],
}
_ORDINALS = {"first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "last": -1}
_ORDINAL = re.compile(r"\b(first|1st|second|2nd|third|3rd|last)\b(?: (?:one|film|movie))?", re.I)
_SEEN = re.compile(
    r"\b(?:seen|saw|watched) (?:it|that|this|those|them|all|the (?:first|second|third|last|1st|2nd|3rd))\b"
    r"|already seen",
    re.I,
)
_NOT_THAT = re.compile(
    r"\b(not (that|this|those|these|it)|something else|other (ones|films|movies)|don'?t like (it|that|those))", re.I
)
_WHY = re.compile(r"\b(why|explain|what makes|tell me (more )?about)\b", re.I)
_LESS = re.compile(r"\b(?:less|not (?:too|so|as)|fewer)\s+(\w+)", re.I)
_NO = re.compile(r"\b(?:no|not|without|avoid|nothing)\s+(?:a\s+|any\s+)?(\w+)", re.I)
_DECADE = re.compile(r"\b(?:the\s+)?(?:(19|20)?(\d)0)'?s\b", re.I)
_AFTER = re.compile(r"\b(?:after|since|newer than|from after)\s+((?:19|20)\d\d)\b", re.I)
_BEFORE = re.compile(r"\b(?:before|older than|earlier than)\s+((?:19|20)\d\d)\b", re.I)
_RECENT = re.compile(r"\b(recent|new|newer|latest)\b", re.I)
_NEGATION = {"not", "no", "never", "don't", "dont", "doesn't", "didn't", "won't", "isn't"}
_PERSON = re.compile(
    r"\b(?:with|by|starring|stars|directed by|from director|featuring)\s+([A-Z][\w.'-]+(?:\s+[A-Z][\w.'-]+){0,2})"
)


@dataclass
class Request:
    """The parts of one user message that change the list."""

    want_genres: list[str] = field(default_factory=list)
    avoid_genres: list[str] = field(default_factory=list)  # hard: "no horror"
    less_genres: list[str] = field(default_factory=list)  # soft: "less violent" reorders
    year_min: int | None = None
    year_max: int | None = None
    people: list[str] = field(default_factory=list)
    ordinal: int | None = None
    seen: bool = False
    not_that: bool = False
    why: bool = False

    def constraints(self) -> list[str]:
        """Human-readable constraints for the preference panel and the memory."""
        out = list(self.want_genres)
        out += [f"no {g}" for g in self.avoid_genres] + [f"less {g}" for g in self.less_genres]
        if self.year_min or self.year_max:
            out.append(f"years {self.year_min or ''}-{self.year_max or ''}")
        return out + [f"with {p}" for p in self.people]


def genres_of(item: Item) -> set[str]:
    """An item's genres, lower case."""
    return {g.strip().lower() for g in re.split(r"[,|]", item.fields.get("genre", "")) if g.strip()}


def people_of(item: Item) -> set[str]:
    """Directors, writers and stars of an item, lower case."""
    names = ", ".join(item.fields.get(k, "") for k in ("director", "star", "writer"))
    return {n.strip().lower() for n in names.split(",") if n.strip()}


_VOCABULARY: dict[str, tuple[frozenset[str], frozenset[str]]] = {}


def _vocabulary(catalog: Catalog) -> tuple[frozenset[str], frozenset[str]]:
    """The catalogue's genres and people (cached per catalogue content)."""
    if catalog.fingerprint not in _VOCABULARY:
        genres = frozenset(g for it in catalog.items for g in genres_of(it))
        people = frozenset(p for it in catalog.items for p in people_of(it))
        _VOCABULARY[catalog.fingerprint] = (genres, people)
    return _VOCABULARY[catalog.fingerprint]


def genre_words(word: str, genres: frozenset[str]) -> list[str]:
    """The catalogue genres a word means: the genre itself, a plural, or a mood word ("scary" -> horror)."""
    word = word.lower().rstrip("s") if word.lower() not in genres else word.lower()
    if word in genres:
        return [word]
    if word in MOODS:
        return [g for g in MOODS[word] if g in genres]
    return [g for g in genres if g.replace("-", "") == word.replace("-", "")]


def _wanted(match: re.Match, text: str) -> bool:
    """Whether a word is asked for, not negated within the four words before it ("I don't watch newer films")."""
    return not _NEGATION & {w.lower() for w in text[: match.start()].split()[-4:]}


def parse_request(text: str, catalog: Catalog, latest_year: int | None = None) -> Request:
    """Rules over one message: genres wanted, avoided or wanted less, years, people, feedback, an ordinal."""
    genres, people = _vocabulary(catalog)
    req = Request(seen=bool(_SEEN.search(text)), not_that=bool(_NOT_THAT.search(text)), why=bool(_WHY.search(text)))
    if m := _ORDINAL.search(text):
        req.ordinal = _ORDINALS[m.group(1).lower()]
    negated: set[str] = set()
    for m in _LESS.finditer(text):
        req.less_genres += genre_words(m.group(1), genres)
        negated.add(m.group(1).lower())
    for m in _NO.finditer(text):
        if m.group(1).lower() in negated:
            continue
        req.avoid_genres += genre_words(m.group(1), genres)
        negated.add(m.group(1).lower())
    for word in re.findall(r"[a-zA-Z-]+", text):
        if word.lower() not in negated:
            req.want_genres += genre_words(word, genres) if word.lower() in genres or word.lower() in MOODS else []
    req.want_genres = [g for g in dict.fromkeys(req.want_genres) if g not in req.avoid_genres + req.less_genres]
    req.avoid_genres, req.less_genres = list(dict.fromkeys(req.avoid_genres)), list(dict.fromkeys(req.less_genres))
    if m := _DECADE.search(text):
        century = m.group(1) or ("20" if m.group(2) in "012" else "19")
        req.year_min = int(f"{century}{m.group(2)}0")
        req.year_max = req.year_min + 9
    if m := _AFTER.search(text):
        req.year_min = int(m.group(1)) + 1
    if m := _BEFORE.search(text):
        req.year_max = int(m.group(1)) - 1
    if latest_year and req.year_min is None and any(_wanted(m, text) for m in _RECENT.finditer(text)):
        req.year_min = latest_year - 10
    for m in _PERSON.finditer(text):
        words = m.group(1).split()
        for n in range(len(words), 1, -1):
            name = " ".join(words[:n]).lower()
            if (name if name in people else name.rstrip(".")) in people:  # "with Tom Hanks." / "by J.J. Abrams"
                req.people.append(name if name in people else name.rstrip("."))
                break
    return req


def latest_year(catalog: Catalog) -> int | None:
    """The newest year in the catalogue (what "recent" is measured from)."""
    years = [int(it.year) for it in catalog.items if it.year.isdigit()]
    return max(years) if years else None


def apply_request(items: list[Item], req: Request) -> list[Item]:
    """Filter by the hard constraints (no genre, years), then order: people and wanted genres first, "less X" last."""
    kept = []
    for it in items:
        g = genres_of(it)
        if g & set(req.avoid_genres):
            continue
        year = int(it.year) if it.year.isdigit() else None
        if year is not None and ((req.year_min and year < req.year_min) or (req.year_max and year > req.year_max)):
            continue
        if year is None and (req.year_min or req.year_max):
            continue
        kept.append(it)

    def key(it: Item) -> tuple:
        g = genres_of(it)
        return (
            -len(people_of(it) & set(req.people)),
            -len(g & set(req.want_genres)),
            len(g & set(req.less_genres)),
        )

    return sorted(kept, key=key)  # stable: ties keep the retrieval order


def article(word: str) -> str:
    """'a' or 'an' before a word."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def and_list(words: list[str]) -> str:
    """a, b and c."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def describe(item: Item) -> str:
    """One grammatical sentence from metadata: "An action and crime film directed by X, starring A and B."."""
    genres = [g for g in re.split(r"\s*[,|]\s*", item.fields.get("genre", "").lower()) if g][:3]
    kind = f"{and_list(genres)} film" if genres else "film"
    text = f"{article(kind)} {kind}"
    if director := item.fields.get("director", "").split(",")[0].strip():
        text += f" directed by {director}"
    stars = [s.strip() for s in item.fields.get("star", "").split(",") if s.strip()][:2]
    if stars:
        text += f"{',' if director else ''} starring {and_list(stars)}"
    return text[0].upper() + text[1:] + "."


def _role(item: Item, person: str) -> str:
    """'is directed by X' / 'stars X' / 'is written by X' for a person of the item (lower-case name)."""
    name = next(
        n.strip()
        for k in ("director", "star", "writer")
        for n in item.fields.get(k, "").split(",")
        if n.strip().lower() == person
    )
    for key, verb in (("director", "is directed by"), ("star", "stars"), ("writer", "is written by")):
        if person in {n.strip().lower() for n in item.fields.get(key, "").split(",")}:
            return f"{verb} {name}"
    return f"has {name}"


def explain(item: Item, liked: list[Item], req: Request | None = None) -> str:
    """Why this item, from the item itself and what the user said: shared people and genres, asked-for traits."""
    reasons = []
    for other in liked:
        shared = people_of(item) & people_of(other)
        if shared:
            reasons.append(f"Like {other.name}, which you mentioned, it {_role(item, sorted(shared)[0])}.")
            break
    else:
        for other in liked:
            shared_g = sorted(genres_of(item) & genres_of(other))
            if shared_g:
                reasons.append(f"Like {other.name}, it is {article(shared_g[0])} {and_list(shared_g[:2])} film.")
                break
    if req is not None:
        asked = sorted(genres_of(item) & set(req.want_genres))
        if asked:
            reasons.append(f"You asked for {and_list(asked)}, and it is one.")
        if req.less_genres and not genres_of(item) & set(req.less_genres):
            reasons.append(f"It has none of what you wanted less of ({and_list(req.less_genres)}).")
        if people := sorted(people_of(item) & set(req.people)):
            reasons.append(f"It {_role(item, people[0])}, as you asked.")
    plot = item.fields.get("plot", "").strip()
    plot_sentence = (re.split(r"(?<=[.!?])\s", plot)[0] if plot else "").strip()
    if plot_sentence and not plot_sentence.endswith((".", "!", "?")):
        plot_sentence += "."
    return " ".join([*reasons, describe(item), *([plot_sentence] if plot_sentence else [])])
