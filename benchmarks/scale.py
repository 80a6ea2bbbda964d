"""Ray scale-out: conversations/s of `generate personas` with 1, 2 and 4 Ray workers, fixed-latency backend.

Run: python benchmarks/scale.py [--workers 1,2,4] [--pairs 32] [--delay 0.25]
Prints one JSON line. The backend is the scripted test model with a fixed latency per request
(`scripted:tests.persona_fakes:stable_reply+delay=S`), so the workers wait as they would on a server;
the critics are the LLM quality expert and the lexicon toxicity filter (the MiniLM faithfulness expert would
make it a benchmark of 2 CPU cores). Timed from the end of pairing to the last selection (the conversation
phase, which is what the workers run); each worker runs one shard of one pair at a time.
Target: efficiency at 4 workers (conversations/s over 4x that of 1 worker) >= 0.8, key `efficiency_at_4`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)  # Ray workers import tests.persona_fakes from here


async def one(workers: int, pairs: int, iterations: int, delay: float, tmp: Path) -> dict:
    from convoforge.agents.persona.context import PersonaContext
    from convoforge.agents.persona.run import RunConfig, run_persona_pipeline

    ctx = PersonaContext(
        iterations=iterations, pairs=pairs, candidates=2, persona_target=2, query_steps=1, min_turns=3, shard_size=1
    )
    cfg = RunConfig(
        out=str(tmp / f"w{workers}"),
        seed=None,
        model=f"scripted:tests.persona_fakes:stable_reply+delay={delay}",
        critic_model=f"scripted:tests.persona_fakes:stable_reply+delay={delay}",
        critics=["quality_depth", "toxicity"],
        context=ctx.as_dict(),
        ray={"address": None, "workers": workers},
    )
    marks: dict[str, float] = {}

    def on_update(node: str, update: dict) -> None:
        marks.setdefault(node, time.perf_counter())
        if node == "select":
            marks["last_select"] = time.perf_counter()

    start = time.perf_counter()
    summary = await run_persona_pipeline(cfg, on_update=on_update)
    wall = time.perf_counter() - start
    conversations = summary["accepted"] + summary["rejected"]
    phase = marks["last_select"] - marks["pair_profiles"]
    return {
        "workers": workers,
        "conversations": conversations,
        "conversation_phase_s": round(phase, 2),
        "conversations_per_s": round(conversations / phase, 3),
        "wall_s": round(wall, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--pairs", type=int, default=32)
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--delay", type=float, default=0.25)
    args = ap.parse_args()
    from convoforge.cluster import connect, shutdown

    counts = [int(x) for x in args.workers.split(",")]
    connect(None, num_cpus=max(counts))  # one local instance; each run makes (and ends) its own worker pool
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in counts:
            runs.append(asyncio.run(one(k, args.pairs, args.iterations, args.delay, Path(tmp))))
    shutdown()
    base = runs[0]["conversations_per_s"] / runs[0]["workers"]
    result = {
        "benchmark": "ray_scale",
        "backend": f"scripted, {args.delay}s per request",
        "pairs": args.pairs,
        "iterations": args.iterations,
        "cpus": os.cpu_count(),
        "runs": runs,
        **{f"efficiency_at_{r['workers']}": round(r["conversations_per_s"] / (base * r["workers"]), 3) for r in runs},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
