"""Item catalogues: ReDial-style id-to-record JSON, MovieLens movies.csv (+ tags), generic JSONL."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from convoforge.errors import ConvoforgeError, reading

_YEAR = re.compile(r"\s*\((\d{4})\)\s*$")
_YEAR_MENTION = re.compile(r"\((\d{4})\)")
_ARTICLE = re.compile(r"^(.*), (The|A|An)( \(\d{4}\))?$")
REDIAL_DIALOGUES = "ReDial dialogues, one JSON object a line"  # what a ReDial file is, in errors


@dataclass(eq=False)
class Item:
    """One catalogue item; `fields` holds every other attribute as text."""

    id: str
    title: str
    year: str = ""
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Title with year, as ReDial writes it."""
        return f"{self.title} ({self.year})" if self.year else self.title

    def text(self) -> str:
        """What the embedder reads."""
        parts = [self.name] + [f"{k}: {v}" for k, v in self.fields.items() if v and k not in {"imdb_id", "url"}]
        return ". ".join(parts)


def _split_title(name: str) -> tuple[str, str]:
    name = re.sub(r"\s+", " ", name).strip()
    m = _YEAR.search(name)
    return (name[: m.start()].strip(), m.group(1)) if m else (name, "")


@contextmanager
def open_csv(path: Path, needed: set[str], what: str) -> Iterator[csv.DictReader]:
    """A user's CSV whose header holds `needed`; another header or text that is not UTF-8: a one-line error.

    MovieLens headers may carry stray spaces (`genres `): the field names are stripped.
    """
    with reading(path, what), open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames:
            reader.fieldnames = [name.strip() for name in reader.fieldnames]
        if not reader.fieldnames or not needed <= set(reader.fieldnames):
            raise ConvoforgeError(f"{path} is not {what} (needs columns {', '.join(sorted(needed))})")
        yield reader


def _as_text(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


@dataclass
class Catalog:
    """Items in a fixed order, with lookups by id and by normalised title."""

    items: list[Item]
    source: str

    def __post_init__(self) -> None:
        if not self.items:
            raise ConvoforgeError(f"catalogue {self.source} has no items")
        self.by_id = {it.id: it for it in self.items}
        self.index_of = {it.id: i for i, it in enumerate(self.items)}

    def __len__(self) -> int:
        return len(self.items)

    @cached_property
    def by_name(self) -> dict[str, Item]:
        """Normalised `title (year)` and bare title -> item (first wins)."""
        table: dict[str, Item] = {}
        for it in self.items:
            table.setdefault(normalise(it.name), it)
            table.setdefault(normalise(it.title), it)
        return table

    @cached_property
    def fingerprint(self) -> str:
        """Changes when any item's text changes (the embedding cache key)."""
        digest = hashlib.sha256()
        for it in self.items:
            digest.update(f"{it.id}\0{it.text()}\n".encode())
        return digest.hexdigest()[:16]

    def find(self, name: str) -> Item | None:
        """Exact lookup by `Title (Year)` or title, after normalisation."""
        return self.by_name.get(normalise(name))

    def mentioned(self, text: str) -> list[Item]:
        """Items named as `Title (Year)` in text (ReDial writes them so), in order, once each."""
        found: list[Item] = []
        for m in _YEAR_MENTION.finditer(text):
            words = text[: m.start()].split()
            for n in range(min(10, len(words)), 0, -1):
                item = self.find(" ".join(words[-n:]) + f" ({m.group(1)})")
                if item:
                    found.append(item)
                    break
        return list(dict.fromkeys(found))


def normalise(name: str) -> str:
    """Lower case, collapsed spaces, no punctuation except the year's parentheses."""
    return re.sub(r"[^a-z0-9() ]+", "", re.sub(r"\s+", " ", name.lower())).strip()


def load_id2info(path: Path) -> Catalog:
    """`{id: {name: "Title (Year)", ...any fields}}` (ReDial's id2info.json)."""
    with reading(path, "a JSON object of id -> record"):
        text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConvoforgeError(f"{path}: not JSON ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise ConvoforgeError(f"{path} must hold a JSON object of id -> record")
    items = []
    for key, record in data.items():
        if not isinstance(record, dict) or "name" not in record:
            raise ConvoforgeError(f"{path}: item {key!r} has no 'name'")
        title, year = _split_title(str(record["name"]))
        fields = {k: _as_text(v) for k, v in record.items() if k != "name"}
        items.append(Item(str(key), title, year, fields))
    return Catalog(items, f"{path.name} ({len(items)} items)")


def load_movielens(path: Path) -> Catalog:
    """MovieLens movies.csv (movieId,title,genres) plus tags.csv beside it when present."""
    tags: dict[str, list[str]] = {}
    tag_file = path.parent / "tags.csv"
    if tag_file.is_file():
        with open_csv(tag_file, {"movieId", "tag"}, "a MovieLens tags.csv") as reader:
            for row in reader:
                tags.setdefault(row["movieId"], []).append(row["tag"])
    items = []
    with open_csv(path, {"movieId", "title", "genres"}, "a MovieLens movies.csv") as reader:
        for row in reader:
            title, year = _split_title(row["title"])
            fields = {"genre": row["genres"].replace("|", ", ").lower()}
            if row["movieId"] in tags:
                fields["tags"] = ", ".join(dict.fromkeys(tags[row["movieId"]]))
            items.append(Item(row["movieId"], title, year, fields))
    return Catalog(items, f"MovieLens {path.name} ({len(items)} items)")


def read_jsonl(path: Path, what: str = "JSON lines") -> list[dict]:
    """JSON objects, one per non-empty line; a bad line is a one-line error with its number."""
    records = []
    with reading(path, what):
        text = path.read_text(encoding="utf-8")
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConvoforgeError(f"{path}:{n}: not JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise ConvoforgeError(f"{path}:{n}: not a JSON object")
        records.append(record)
    return records


def load_jsonl(path: Path) -> Catalog:
    """One JSON object per line with `id` and `title`; other keys become fields."""
    items = []
    for n, record in enumerate(read_jsonl(path, "a catalogue, one JSON object a line"), 1):
        if "id" not in record or "title" not in record:
            raise ConvoforgeError(f"{path}: record {n} needs 'id' and 'title'")
        title, year = _split_title(str(record["title"]))
        year = str(record.get("year", year) or "")
        fields = {k: _as_text(v) for k, v in record.items() if k not in {"id", "title", "year"}}
        items.append(Item(str(record["id"]), title, year, fields))
    return Catalog(items, f"{path.name} ({len(items)} items)")


def load_catalog(path: str | Path) -> Catalog:
    """Pick the loader by file name and shape."""
    path = Path(path)
    if not path.is_file():
        raise ConvoforgeError(f"no catalogue at {path}")
    if path.suffix == ".csv":
        return load_movielens(path)
    if path.suffix == ".jsonl":
        return load_jsonl(path)
    if path.suffix == ".json":
        return load_id2info(path)
    raise ConvoforgeError(f"{path}: unknown catalogue format (use .json id->record, MovieLens .csv or .jsonl)")


def movielens_ratings(ratings: Path, catalog: Catalog) -> Iterator[tuple[str, str, float]]:
    """(MovieLens user, catalogue item id, rating) in file order, films matched by normalised `Title (Year)`.

    MovieLens writes "Shining, The (1980)"; the article moves to the front before matching.
    """
    movies = ratings.parent / "movies.csv"
    if not ratings.is_file() or not movies.is_file():
        raise ConvoforgeError(f"{ratings} is not a MovieLens ratings.csv with movies.csv beside it")
    ids_by_name: dict[str, list[str]] = {}
    for it in catalog.items:
        ids_by_name.setdefault(normalise(it.name), []).append(it.id)
    item_of: dict[str, list[str]] = {}
    with open_csv(movies, {"movieId", "title"}, "a MovieLens movies.csv") as reader:
        for row in reader:
            title = row["title"].strip()
            if m := _ARTICLE.match(title):
                title = f"{m.group(2)} {m.group(1)}{m.group(3) or ''}"
            if ids := ids_by_name.get(normalise(title)):
                item_of[row["movieId"]] = ids
    with open_csv(ratings, {"userId", "movieId", "rating"}, "a MovieLens ratings.csv") as reader:
        for row in reader:
            for item_id in item_of.get(row["movieId"], []):
                yield row["userId"], item_id, float(row["rating"])


def movielens_likes(ratings: Path, catalog: Catalog, min_rating: float = 4.0) -> dict[str, list[str]]:
    """Per MovieLens user, the catalogue items they rated at least min_rating, once each."""
    likes: dict[str, dict[str, None]] = {}  # dicts keep first-seen order and drop repeats
    for user, item_id, rating in movielens_ratings(ratings, catalog):
        if rating >= min_rating:
            likes.setdefault(user, {})[item_id] = None
    return {user: list(ids) for user, ids in likes.items()}
