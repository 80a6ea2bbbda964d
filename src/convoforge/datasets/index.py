"""Vector index over item embeddings: faiss exact search, HNSW above ~100k items; cached vectors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from convoforge.llm.embeddings import Embedder
from convoforge.llm.local import cache_root

ANN_THRESHOLD = 100_000


class VectorIndex:
    """Inner-product search over unit vectors (cosine); exact below ANN_THRESHOLD, HNSW above."""

    def __init__(self, vectors: np.ndarray, exact: bool | None = None, hnsw_m: int = 32, ef_search: int = 64) -> None:
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.size, self.dim = vectors.shape
        self.exact = self.size <= ANN_THRESHOLD if exact is None else exact
        if self.exact:
            self.index = faiss.IndexFlatIP(self.dim)
        else:
            self.index = faiss.IndexHNSWFlat(self.dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efConstruction = 64
        self.index.add(vectors)
        if not self.exact:
            self.index.hnsw.efSearch = ef_search

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores and row ids of the k nearest items per query row (-1 where fewer exist)."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        return self.index.search(queries, min(k, self.size))


def item_vectors(embedder: Embedder, texts: list[str], fingerprint: str) -> np.ndarray:
    """Embeddings of a whole catalogue, stored once as .npy keyed by model and catalogue content."""
    path = cache_root() / "indexes" / f"{embedder.key}-{fingerprint}.npy"
    if path.is_file():
        vectors = np.load(path)
        if vectors.shape[0] == len(texts):
            return vectors
    vectors = embedder.embed(texts)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, vectors)
    os.replace(tmp, path)
    return vectors


def cached_index_path(embedder: Embedder, fingerprint: str) -> Path:
    """Where item_vectors keeps a catalogue's vectors."""
    return cache_root() / "indexes" / f"{embedder.key}-{fingerprint}.npy"
