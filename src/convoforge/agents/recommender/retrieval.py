"""Fused retrieval over a catalogue: dual encoder, item-to-item, concepts, fuzzy titles, popularity.

With training dialogues (`--train`), a learned ranker (`fusion.py`) orders the candidates of the
dual encoder, co-mention, the recommended prior and MovieLens CF; concepts, titles and the profile
are then fused with its list by reciprocal rank.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rapidfuzz import fuzz, process

from convoforge.agents.recommender.fusion import InDomain, Query
from convoforge.datasets.catalog import Catalog, Item, movielens_ratings
from convoforge.datasets.index import VectorIndex, item_vectors
from convoforge.llm.embeddings import Embedder


@dataclass
class Weights:
    """How much each retrieval source counts in reciprocal-rank fusion."""

    context: float = 1.0
    items: float = 2.0
    concepts: float = 0.7
    titles: float = 1.5
    profile: float = 0.3
    popularity: float = 1.0
    learned: float = 4.0
    rrf_k: int = 60


class Retriever:
    """Everything the recommender needs to find items; built once per catalogue."""

    def __init__(self, catalog: Catalog, embedder: Embedder, popularity: dict[str, float] | None = None) -> None:
        self.catalog, self.embedder, self.popularity = catalog, embedder, popularity
        self.vectors = item_vectors(embedder, [it.text() for it in catalog.items], catalog.fingerprint)
        self.index = VectorIndex(self.vectors)
        self.names = [it.name for it in catalog.items]
        pop = np.array([popularity.get(it.id, 0.0) for it in catalog.items]) if popularity else None
        self.popular = np.argsort(-pop)[:500].tolist() if pop is not None and pop.any() else []
        self.popularity_array = pop.astype(np.float32) if pop is not None else None
        self.popularity_key = (
            hashlib.sha256(repr(sorted(popularity.items())).encode()).hexdigest() if popularity else ""
        )
        self.learned: InDomain | None = None

    def query(self, context: list[str], liked: list[Item]) -> Query:
        """What the learned ranker reads of a turn: its last two utterances' vector and the items named."""
        return self.queries([(context, liked)])[0]

    def queries(self, turns: list[tuple[list[str], list[Item]]]) -> list[Query]:
        """Query for many turns, their texts embedded in one batch."""
        texts = [[t for t in context if t.strip()][-2:] for context, _ in turns]
        flat = [t for group in texts for t in group]
        vecs = self.embedder.embed_query(flat) if flat else np.zeros((0, self.vectors.shape[1]), np.float32)
        out, at = [], 0
        for (context, liked), group in zip(turns, texts, strict=True):
            vector = last = None
            if group:
                vector = vecs[at : at + len(group)].mean(axis=0)
                vector = vector / (np.linalg.norm(vector) + 1e-9)
                last = vecs[at + len(group) - 1]
                last = last / (np.linalg.norm(last) + 1e-9)
                at += len(group)
            rows = [self.catalog.index_of[it.id] for it in liked if it.id in self.catalog.index_of]
            words = sum(len(t.split()) for t in context)
            said, request = " ".join(context), group[-1] if group else ""
            out.append(Query(vector, list(dict.fromkeys(rows)), words, text=said, last_vector=last, last_text=request))
        return out

    def mentioned(self, text: str) -> list[Item]:
        """Catalogue items named as `Title (Year)` in text."""
        return self.catalog.mentioned(text)

    def by_text(self, texts: list[str], k: int) -> list[int]:
        """Dual encoder: the mean embedding of the texts against item vectors."""
        texts = [t for t in texts if t.strip()]
        if not texts:
            return []
        query = self.embedder.embed_query(texts).mean(axis=0)
        return self._search(query, k)

    def by_items(self, items: list[Item], k: int) -> list[int]:
        """Items like the given ones (mean of their vectors)."""
        rows = [self.catalog.index_of[it.id] for it in items if it.id in self.catalog.index_of]
        return self._search(self.vectors[rows].mean(axis=0), k) if rows else []

    def by_concepts(self, concepts: list[str], k: int) -> list[int]:
        """Concept search: each concept embedded and searched; lists fused."""
        concepts = [c for c in concepts if c.strip()][:8]
        if not concepts:
            return []
        vecs = self.embedder.embed_query(concepts)
        _, ids = self.index.search(vecs, k)
        return rrf([row[row >= 0].tolist() for row in ids], [1.0] * len(ids), 60)[:k]

    def by_titles(self, titles: list[str], cutoff: float = 88) -> list[int]:
        """LLM title search: fuzzy-match proposed titles to catalogue names."""
        rows = []
        for title in titles[:10]:
            match = process.extractOne(title, self.names, scorer=fuzz.WRatio, score_cutoff=cutoff)
            if match:
                rows.append(match[2])
        return list(dict.fromkeys(rows))

    def _search(self, query: np.ndarray, k: int) -> list[int]:
        query = query / (np.linalg.norm(query) + 1e-9)
        _, ids = self.index.search(query[None, :], k)
        return [i for i in ids[0].tolist() if i >= 0]

    def retrieve(
        self,
        context: list[str],
        liked: list[Item],
        concepts: list[str],
        titles: list[str],
        profile: str,
        exclude: set[str],
        k: int = 50,
        weights: Weights | None = None,
    ) -> list[tuple[Item, float]]:
        """Fuse every source by reciprocal rank; items already mentioned or rejected are excluded."""
        w = weights or Weights()
        depth = max(4 * k, 200)
        if self.learned is not None:
            return self._retrieve_learned(context, liked, concepts, titles, profile, exclude, k, w)
        lists = [
            self.by_text(context, depth),
            self.by_items(liked, depth),
            self.by_concepts(concepts, depth),
            self.by_titles(titles),
            self.by_text([profile], depth) if profile else [],
            self.popular,
        ]
        fused = rrf(lists, [w.context, w.items, w.concepts, w.titles, w.profile, w.popularity], w.rrf_k, scores=True)
        return self._top(fused, exclude, k)

    def _retrieve_learned(self, context, liked, concepts, titles, profile, exclude, k, w) -> list[tuple[Item, float]]:
        """The learned ranker's list, with the LLM's concepts and titles and the profile fused in."""
        query = self.query(context, liked)
        query.exclude = {self.catalog.index_of[x] for x in exclude if x in self.catalog.index_of}
        depth = max(4 * k, 200)
        learned = [row for row, _ in self.learned.rank(self.vectors, query, depth)]
        extra = [
            self.by_concepts(concepts, depth),
            self.by_titles(titles),
            self.by_text([profile], depth) if profile else [],
        ]
        if not any(extra):
            fused = [(row, 1.0 / (w.rrf_k + rank + 1)) for rank, row in enumerate(learned)]
        else:
            fused = rrf([learned, *extra], [w.learned, w.concepts, w.titles, w.profile], w.rrf_k, scores=True)
        return self._top(fused, exclude, k)

    def _top(self, fused: list[tuple[int, float]], exclude: set[str], k: int) -> list[tuple[Item, float]]:
        """The first k fused rows as items, skipping excluded ids."""
        out = []
        for row, score in fused:
            item = self.catalog.items[row]
            if item.id not in exclude:
                out.append((item, score))
            if len(out) == k:
                break
        return out


def rrf(lists: list[list[int]], weights: list[float], k: int, scores: bool = False) -> list:
    """Weighted reciprocal-rank fusion of ranked id lists."""
    total: Counter[int] = Counter()
    for ranked, weight in zip(lists, weights, strict=True):
        for rank, row in enumerate(ranked):
            total[row] += weight / (k + rank + 1)
    ranked_rows = sorted(total, key=lambda r: -total[r])
    return [(r, total[r]) for r in ranked_rows] if scores else ranked_rows


def movielens_popularity(ratings: Path, catalog: Catalog) -> dict[str, float]:
    """log(1 + number of MovieLens ratings) per catalogue item, matched by `Title (Year)`."""
    counts = Counter(item_id for _, item_id, _ in movielens_ratings(ratings, catalog))
    return {item_id: float(np.log1p(n)) for item_id, n in counts.items()}
