"""The embedded MiniLM embedder and its cache."""

from __future__ import annotations

import numpy as np
import pytest

from convoforge.errors import ModelSpecError
from convoforge.llm.embeddings import Embedder

pytestmark = pytest.mark.slow


def test_embeddings_are_normalised_and_meaningful(embedder):
    vecs = embedder.embed(["I love my dog", "Dogs are my favourite animals", "The stock market fell"])
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-4)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2] + 0.2


def test_cache_returns_the_same_vectors(embedder, monkeypatch):
    first = embedder.embed(["a cached sentence about tea"])
    monkeypatch.setattr(embedder.model, "encode", lambda *a, **k: pytest.fail("should be cached"))
    again = embedder.embed(["a cached sentence about tea", "a cached sentence about tea"])
    assert np.array_equal(again[0], first[0]) and again.shape == (2, 384)
    assert embedder.embed([]).shape == (0, 384)


def test_missing_embedder_folder(tmp_path):
    with pytest.raises(ModelSpecError, match="no sentence-transformers model"):
        Embedder(str(tmp_path))
