"""Learned fusion: a gradient-boosted ranker over every source's score and rank, trained on training-dialogue turns."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import skops.io as skops_io
from scipy import sparse
from sklearn.ensemble import HistGradientBoostingClassifier

from convoforge.agents.recommender.requests import genre_words, genres_of, people_of
from convoforge.agents.recommender.signals import MovieLensCF, Signals, files_key, redial_turns
from convoforge.errors import ConvoforgeError
from convoforge.llm.local import cache_root

log = logging.getLogger(__name__)
SOURCES = [
    "context", "items", "comention", "cooccur", "prior", "cf", "popularity", "items_last", "cooccur_last",
    "context_last", "people",
]  # fmt: skip
METADATA = ["genre_liked", "genre_context", "genre_last", "year_near"]  # scored, but never adding candidates
FEATURES = [f"{s}_{kind}" for s in SOURCES + METADATA for kind in ("score", "rank")] + ["n_liked", "context_words"]
DEPTH = 200  # candidates taken from the top of each source
FORMAT = 5  # bump when the features or the model change (the cache key)


@dataclass
class Query:
    """What the ranker sees of one turn: the context's vector and the catalogue rows named so far."""

    vector: np.ndarray | None
    liked: list[int]
    words: int
    exclude: set[int] = field(default_factory=set)
    text: str = ""  # the whole context (its genre words and people)
    last_vector: np.ndarray | None = None  # the last utterance alone: the request of this turn
    last_text: str = ""


@dataclass
class ItemMeta:
    """Per item: its genres (0/1 over the catalogue's vocabulary), year and people, for the metadata features."""

    vocab: list[str]
    genres: np.ndarray
    years: np.ndarray
    people: sparse.csr_matrix | None = None  # items x people (directors, stars, writers)
    names: dict[str, int] = field(default_factory=dict)  # a person's lower-case name -> column

    @classmethod
    def from_catalog(cls, catalog) -> ItemMeta:
        """Read genres and years from the catalogue's fields."""
        vocab = sorted({g for it in catalog.items for g in genres_of(it)})
        col = {g: i for i, g in enumerate(vocab)}
        genres = np.zeros((len(catalog), max(len(vocab), 1)), dtype=np.float32)
        for r, it in enumerate(catalog.items):
            for g in genres_of(it):
                genres[r, col[g]] = 1.0
        years = np.array([float(it.year) if it.year.isdigit() else np.nan for it in catalog.items], np.float32)
        names: dict[str, int] = {}
        rows, cols = [], []
        for r, it in enumerate(catalog.items):
            for person in people_of(it):
                rows.append(r)
                cols.append(names.setdefault(person, len(names)))
        shape = (len(catalog), max(len(names), 1))
        people = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)
        return cls(vocab, genres, years, people, names)

    def named(self, text: str) -> np.ndarray:
        """How many of each item's people the text names (word 2- to 4-grams looked up by full name)."""
        if self.people is None or not text:
            return np.zeros(self.genres.shape[0], np.float32)
        words = re.findall(r"[a-z0-9'.-]+", text.lower())
        grams = (" ".join(words[i : i + n]) for n in (2, 3, 4) for i in range(len(words) - n + 1))
        said = {col for g in grams if (col := self.names.get(g, self.names.get(g.rstrip(".")))) is not None}
        if not said:
            return np.zeros(self.genres.shape[0], np.float32)
        hot = np.zeros(self.people.shape[1], np.float32)
        hot[list(said)] = 1.0
        return self.people @ hot

    def _said(self, text: str, vocab: frozenset[str], column: dict[str, int]) -> np.ndarray:
        """0/1 over the genre vocabulary: the genres the text's words mean."""
        said = np.zeros(self.genres.shape[1], dtype=np.float32)
        for word in set(re.findall(r"[a-z][a-z-]+", text.lower())):
            for g in genre_words(word, vocab):
                said[column[g]] = 1.0
        return said

    def scores(self, query: Query) -> dict[str, np.ndarray]:
        """Genre overlap with the films named, the genre words said (all, and in the last utterance); year nearness."""
        size = self.genres.shape[0]
        count = self.genres.sum(axis=1) + 1e-6
        liked = self.genres[query.liked].mean(axis=0) if query.liked else np.zeros(self.genres.shape[1], np.float32)
        year = (
            np.nanmean(self.years[query.liked]) if query.liked and np.isfinite(self.years[query.liked]).any() else None
        )
        near = -np.abs(self.years - year) if year is not None else np.zeros(size, np.float32)
        vocab, column = frozenset(self.vocab), {g: i for i, g in enumerate(self.vocab)}
        return {
            "genre_liked": (self.genres @ liked) / count,
            "genre_context": self.genres @ self._said(query.text, vocab, column),
            "genre_last": self.genres @ self._said(query.last_text, vocab, column),
            "year_near": np.nan_to_num(near, nan=-100.0).astype(np.float32),
        }


class InDomain:
    """The learned sources and the fusion model over them, for one catalogue, embedder and training set."""

    def __init__(
        self,
        signals: Signals,
        cf: MovieLensCF | None,
        popularity: np.ndarray | None,
        model: HistGradientBoostingClassifier | None = None,
        meta: ItemMeta | None = None,
    ) -> None:
        self.signals, self.cf, self.popularity, self.model, self.meta = signals, cf, popularity, model, meta

    def candidates(self, vectors: np.ndarray, query: Query, signals: Signals | None = None) -> tuple[np.ndarray, dict]:
        """Candidate rows (the top of each source, minus excluded) and every source's score over the catalogue."""
        signals = signals or self.signals
        sig = signals.scores(query.liked)
        last = query.liked[-1:]
        size = vectors.shape[0]
        zero = np.zeros(size, dtype=np.float32)
        full = {
            "context": vectors @ query.vector if query.vector is not None else zero,
            "items": vectors @ vectors[query.liked].mean(axis=0) if query.liked else zero,
            "comention": sig["comention"],
            "cooccur": sig["cooccur"],
            "prior": sig["prior"],
            "cf": self.cf.scores(query.liked) if self.cf is not None else zero,
            "popularity": self.popularity if self.popularity is not None else zero,
            "items_last": vectors @ vectors[last[0]] if last else zero,  # the film named most recently
            "cooccur_last": signals.scores(last)["cooccur"] if last else zero,
            "context_last": vectors @ query.last_vector if query.last_vector is not None else zero,
            "people": self.meta.named(query.text) if self.meta is not None else zero,  # actors, directors named
        }
        picks = []
        for name, scores in full.items():
            if name in {"items", "comention", "cooccur", "cf", "items_last", "cooccur_last"} and not query.liked:
                continue
            top = np.argpartition(-scores, min(DEPTH, size - 1))[:DEPTH]
            picks.append(top if name in {"context", "context_last", "prior"} else top[scores[top] > 0])
        if self.meta is not None:
            full.update(self.meta.scores(query))
        else:
            full.update({name: zero for name in METADATA})
        pool = np.unique(np.concatenate(picks)) if picks else np.zeros(0, np.int64)
        drop = np.fromiter(query.exclude | set(query.liked), dtype=np.int64)
        return pool[~np.isin(pool, drop)].astype(np.int64), full

    @staticmethod
    def features(rows: np.ndarray, full: dict, query: Query) -> np.ndarray:
        """One row of FEATURES per candidate."""
        cols = []
        for name in SOURCES + METADATA:
            score = full[name][rows]
            order = np.argsort(-score, kind="stable")
            rank = np.empty(len(rows), dtype=np.float32)
            rank[order] = np.arange(len(rows))
            cols += [score, 1.0 / (1.0 + rank)]
        n = len(rows)
        cols += [np.full(n, len(query.liked), np.float32), np.full(n, np.log1p(query.words), np.float32)]
        return np.stack(cols, axis=1).astype(np.float32)

    def rank(self, vectors: np.ndarray, query: Query, k: int) -> list[tuple[int, float]]:
        """The top k catalogue rows with the model's probability.

        One thread: these are small matrix-vector products and ~800 tree walks, where waking a
        BLAS or OpenMP pool costs more than it saves (p95 16 -> 10 ms for the trees alone here).
        """
        with _one_thread():
            rows, full = self.candidates(vectors, query)
            if not len(rows):
                return []
            prob = self.model.predict_proba(self.features(rows, full, query))[:, 1]
        order = np.argsort(-prob, kind="stable")[:k]
        return [(int(rows[i]), float(prob[i])) for i in order]


_CONTROLLER: list = []


def _one_thread():
    """A context that limits BLAS and OpenMP to one thread (threadpoolctl, scikit-learn's own dependency)."""
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1)


def _fold(dialog_id: str, folds: int) -> int:
    return int(hashlib.sha256(dialog_id.encode()).hexdigest(), 16) % folds


def examples(
    retriever, turns: list[dict], cf: MovieLensCF | None, popularity: np.ndarray | None, folds: int = 5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, InDomain]:
    """Candidate features and labels of training turns, co-mention out of fold (never a turn's own dialogue)."""
    catalog, size = retriever.catalog, len(retriever.catalog)
    queries = retriever.queries(
        [(t["context"], [catalog.by_id[x] for x in t["seen"] if x in catalog.by_id]) for t in turns]
    )
    fold_of = [_fold(t["dialog_id"], folds) for t in turns]
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    helper = InDomain(
        Signals.from_turns(turns, size, catalog.index_of), cf, popularity, meta=ItemMeta.from_catalog(catalog)
    )
    for f in range(folds):
        others = [t for t, g in zip(turns, fold_of, strict=True) if g != f]
        sig = Signals.from_turns(others, size, catalog.index_of)
        for t, q, g in zip(turns, queries, fold_of, strict=True):
            if g != f:
                continue
            rows, full = helper.candidates(retriever.vectors, q, sig)
            targets = {catalog.index_of[x] for x in t["targets"] if x in catalog.index_of}
            label = np.array([r in targets for r in rows])
            if not label.any():
                continue
            keep = np.flatnonzero(label)
            neg = np.flatnonzero(~label)
            keep = np.concatenate([keep, rng.choice(neg, size=min(len(neg), 300), replace=False)])
            xs.append(InDomain.features(rows, full, q)[keep])  # ranks among the whole pool, as at run time
            ys.append(label[keep])
    return np.concatenate(xs), np.concatenate(ys), helper


def fit_fusion(
    retriever, turns: list[dict], cf: MovieLensCF | None, popularity: np.ndarray | None, folds: int = 5, seed: int = 0
) -> InDomain:
    """Train the fusion model on training turns (features from `examples`)."""
    x, y, helper = examples(retriever, turns, cf, popularity, folds, seed)
    model = HistGradientBoostingClassifier(
        max_iter=300,
        learning_rate=0.05,
        max_leaf_nodes=15,
        l2_regularization=1.0,
        min_samples_leaf=50,
        random_state=seed,
    )  # chosen on ReDial valid among four settings (README Results)
    model.fit(x, y)
    log.info("fusion trained on %d candidates (%d positives)", len(y), int(y.sum()))
    return InDomain(helper.signals, cf, popularity, model, helper.meta)


TRUSTED = ("convoforge.", "sklearn.", "scipy.sparse.", "numpy.")


def _load(path: Path) -> InDomain:
    """The cached model, read with skops (no pickle): only convoforge, scikit-learn, scipy and numpy types."""
    found = skops_io.get_untrusted_types(file=path)
    if strange := [t for t in found if not t.startswith(TRUSTED)]:
        raise ConvoforgeError(f"{path} holds types convoforge does not load: {', '.join(strange)}; delete it")
    return skops_io.load(path, trusted=found)


def load_in_domain(retriever, train: list[Path], movielens: Path | None = None) -> InDomain:
    """The in-domain sources and fusion model for these training files, from the cache beside the index or trained."""
    key = hashlib.sha256(
        f"{FORMAT}|{retriever.embedder.key}|{retriever.catalog.fingerprint}|{files_key(train)}|"
        f"{files_key([movielens / 'ratings.csv', movielens / 'links.csv']) if movielens else ''}|"
        f"{retriever.popularity_key}".encode()
    ).hexdigest()[:16]
    path = cache_root() / "indexes" / f"fusion-{key}.skops"
    if path.is_file():
        return _load(path)
    turns = [t for p in train for t in redial_turns(p, retriever.catalog)]
    cf = MovieLensCF(movielens, retriever.catalog) if movielens else None
    learned = fit_fusion(retriever, turns, cf, retriever.popularity_array)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    skops_io.dump(learned, tmp)
    os.replace(tmp, path)
    return learned
