"""Catalogue films related to a goal film, the ones a ReDial seeker names ("something like The Babadook").

Seekers name a film of the same franchise, with the same actors or director, or of the same genre and era.
The score adds those cues from the catalogue's own metadata: genre overlap (Jaccard), 2 for a shared title
word (a franchise or remake), 1 per shared star, 1 for a shared director, minus a twentieth per year apart.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from convoforge.datasets.catalog import Catalog, Item

# Title words too common to tie two films together.
_STOP = frozenset(
    "the and for with from who what all you are was this that not out one man love day night life story new big "
    "little last first time movie part".split()
)


def title_words(item: Item) -> set[str]:
    """Content words of the title, the cue that ties a franchise or a remake together."""
    return {w for w in re.findall(r"[a-z0-9']+", item.title.lower()) if len(w) > 2 and w not in _STOP}


def names_in(item: Item, field: str) -> set[str]:
    """The comma-separated names of one field (`star`, `director`, `genre`), lower case."""
    return {n.strip().lower() for n in item.fields.get(field, "").split(",") if n.strip()}


def _postings(sets: list[set[str]]) -> dict[str, list[int]]:
    index: dict[str, list[int]] = defaultdict(list)
    for row, values in enumerate(sets):
        for value in values:
            index[value].append(row)
    return index


@dataclass
class Relatedness:
    """The catalogue's cues as arrays and inverted lists, so one goal scores every item at once."""

    catalog: Catalog
    genres: np.ndarray  # items x genres, 0/1
    years: np.ndarray  # NaN where unknown
    cues: list[tuple[float, bool, list[set[str]], dict[str, list[int]]]]  # weight, per hit?, values, postings

    @classmethod
    def of(cls, catalog: Catalog) -> Relatedness:
        """Index a catalogue's genres, years, title words, stars and directors."""
        genre_sets = [names_in(it, "genre") for it in catalog.items]
        vocab = {g: j for j, g in enumerate(sorted(set().union(*genre_sets)))}
        genres = np.zeros((len(catalog.items), max(len(vocab), 1)), dtype=np.float32)
        for row, values in enumerate(genre_sets):
            genres[row, [vocab[g] for g in values]] = 1.0
        years = np.array([float(it.year) if it.year.isdigit() else np.nan for it in catalog.items])
        cues = [
            (weight, per_hit, sets, _postings(sets))
            for weight, per_hit, sets in (
                (2.0, False, [title_words(it) for it in catalog.items]),
                (1.0, True, [names_in(it, "star") for it in catalog.items]),
                (1.0, False, [names_in(it, "director") for it in catalog.items]),
            )
        ]
        return cls(catalog, genres, years, cues)

    def scores(self, row: int) -> np.ndarray:
        """Every item's relatedness to the item at `row` (itself gets -inf)."""
        goal = self.genres[row]
        inter = self.genres @ goal
        union = goal.sum() + self.genres.sum(axis=1) - inter
        score = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
        for weight, per_hit, sets, postings in self.cues:
            hits = np.zeros(len(score))
            for value in sets[row]:
                hits[postings[value]] += 1
            score += weight * (hits if per_hit else hits > 0)
        gap = np.abs(self.years - self.years[row]) / 20
        score -= np.nan_to_num(gap, nan=0.5)
        score[row] = -np.inf
        return score

    def related(self, item_id: str, k: int, rng: random.Random, top: int = 8) -> list[str]:
        """Ids of k items drawn from the `top` most related to the item, best first."""
        score = self.scores(self.catalog.index_of[item_id])
        best = np.argsort(-score, kind="stable")[:top].tolist()
        picked = sorted(rng.sample(best, min(k, len(best))), key=best.index)
        return [self.catalog.items[r].id for r in picked]
