"""Retrieval latency per turn on the ReDial catalogue: today's fusion and the learned one (with --train).

Run: python benchmarks/retrieval_latency.py [--turns 300] [--data ../shared/data]
Prints one JSON line: p50/p95 ms per turn, the whole `recommend` call (query embedding included;
each turn's text is made new, so the embedding cache misses), for the hand-set reciprocal-rank
fusion and for the learned fusion trained on redial/train_dialogs.jsonl (+ MovieLens CF).
Target: p95 <= 50 ms on this CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def timed(agent, turns: list[dict], tag: str) -> dict:
    """Latency of agent.recommend per turn; each turn's last utterance is made unique so the cache misses."""
    latencies = []
    for i, t in enumerate(turns):
        context = [u for u in t["context"] if u]
        context[-1] = f"{context[-1]} ({tag} {i})"
        started = time.perf_counter()
        asyncio.run(agent.recommend(context, k=50))
        latencies.append((time.perf_counter() - started) * 1000)
    return {
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p95_ms": round(float(np.percentile(latencies, 95)), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--data", default=os.environ.get("CONVOFORGE_DATA", "../shared/data"))
    args = parser.parse_args()
    data = Path(args.data)
    if not (data / "redial" / "train_dialogs.jsonl").is_file():
        sys.exit(f"error: no ReDial data under {data} (set --data or CONVOFORGE_DATA)")
    from convoforge.agents.recommender.agent import RecommenderAgent, build_retriever
    from convoforge.simulators.evaluate_crs import load_turns

    catalog = data / "redial" / "id2info.json"
    ratings = data / "movielens" / "ratings.csv"
    plain = RecommenderAgent(None, build_retriever(catalog), use_llm=False)
    started = time.perf_counter()
    learned = RecommenderAgent(
        None, build_retriever(catalog, ratings, train=[data / "redial" / "train_dialogs.jsonl"]), use_llm=False
    )
    fit_s = time.perf_counter() - started
    turns = load_turns(data / "redial" / "valid_turns.jsonl", plain.retriever.catalog, args.turns)
    timed(plain, turns[:10], "warm")
    row = {
        "benchmark": "retrieval_latency",
        "cpus": os.cpu_count(),
        "items": len(plain.retriever.catalog),
        "turns": len(turns),
        "rrf": timed(plain, turns, "rrf"),
        "learned": timed(learned, turns, "learned"),
        "learned_build_s": round(fit_s, 1),  # the fit, or its cached copy
        "target_p95_ms": 50,
    }
    print(json.dumps(row))


if __name__ == "__main__":
    main()
