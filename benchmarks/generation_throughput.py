"""Persona pipeline throughput: conversations/s through the whole graph.

Run: python benchmarks/generation_throughput.py [--pairs 200] [--real-pairs 2] [--skip-real]
Prints one JSON line:
- scripted: a zero-latency scripted backend, so the figure is the framework's own cost
  (target >= 200 conversations/s). Measured with the LLM critics (5 quality experts, JSON
  parsed and validated) and the lexicon toxicity expert; and separately with the MiniLM
  faithfulness expert added (that one spends real CPU on embeddings).
- embedded: conversations per minute with local:smollm2-135m on this CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.persona_fakes import pipeline_reply

from convoforge.agents.persona.context import PersonaContext
from convoforge.agents.persona.graph import build_graph
from convoforge.agents.persona.seeds import load_seeds
from convoforge.critics import load_critics
from convoforge.llm import load_chat_model
from convoforge.llm.scripted import ScriptedChatModel

LLM_CRITICS = [f"quality_{d}" for d in ("depth", "coherency", "consistency", "diversity", "likability")]


async def timed_run(llm, critics: list[str], ctx: PersonaContext) -> dict:
    seeds = load_seeds(None)
    graph = build_graph(llm, load_critics(critics))
    marks: dict[str, float] = {}
    state: dict = {}
    start = time.perf_counter()
    inputs = {"seed_attributes": seeds.attributes, "seed_examples": seeds.examples}
    async for mode, chunk in graph.astream(inputs, context=ctx, stream_mode=["updates", "values"]):
        if mode == "updates" and "pair_profiles" in chunk:
            marks["generation_start"] = time.perf_counter()
        elif mode == "values":
            state = chunk
    end = time.perf_counter()
    candidates = len(state["accepted"]) + len(state["rejected"])
    phase = end - marks["generation_start"]
    return {
        "candidates": candidates,
        "accepted": len(state["accepted"]),
        "total_s": round(end - start, 2),
        "generation_phase_s": round(phase, 2),
        "candidates_per_s": round(candidates / phase, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--real-pairs", type=int, default=2)
    parser.add_argument("--skip-real", action="store_true")
    args = parser.parse_args()
    ctx = PersonaContext(
        iterations=2,
        pairs=args.pairs,
        candidates=3,
        persona_target=4,
        query_steps=1,
        min_turns=3,
        check_contradictions=False,
    )
    scripted = ScriptedChatModel(pipeline_reply)
    figures: dict = {"benchmark": "generation_throughput", "cpus": os.cpu_count()}
    figures["scripted_llm_critics"] = asyncio.run(timed_run(scripted, [*LLM_CRITICS, "toxicity"], ctx))
    figures["scripted_with_minilm_faithfulness"] = asyncio.run(
        timed_run(scripted, [*LLM_CRITICS, "toxicity", "faithfulness"], ctx)
    )
    if not args.skip_real:
        real = PersonaContext(
            iterations=1,
            pairs=args.real_pairs,
            candidates=2,
            few_shot=2,
            persona_target=2,
            query_steps=1,
            min_turns=3,
            max_tokens=400,
            check_contradictions=False,
        )
        result = asyncio.run(timed_run(load_chat_model("local:smollm2-135m"), ["faithfulness", "toxicity"], real))
        result["candidates_per_min"] = round(60 * result["candidates"] / result["generation_phase_s"], 2)
        figures["embedded_smollm2"] = result
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
