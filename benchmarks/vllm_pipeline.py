"""vLLM as the engine: the persona pipeline's tokens/s through a vLLM server against vLLM's own benchmark of
the same server at the same load, and the local transformers backend against vLLM on the same model and CPU.

Run: python benchmarks/vllm_pipeline.py [--base-url URL] [--pairs 4] [--iterations 1] [--local]
Prints one JSON line. Without --base-url it starts `convoforge vllm serve` on the embedded SmolLM2 (its
environment made once: `convoforge vllm setup`). The pipeline runs in this process through the openai backend
(every request metered: latency and usage); then vLLM's own `benchmarks/serve.py` (random dataset, --ignore-eos)
sends the same number of requests with the pipeline's mean prompt and output lengths at the pipeline's mean
number of requests in flight (Little's law: summed latency / wall time). `pipeline_efficiency` is the
pipeline's output tokens/s over vLLM's (target >= 0.9). --local adds output tokens/s of both backends at 1, 8
and 16 concurrent requests (the local one measured first, before the server starts, when this script starts it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

BENCH = (
    "import json, sys\n"
    "from vllm.utils.argparse_utils import FlexibleArgumentParser\n"
    "from vllm.benchmarks.serve import add_cli_args, main\n"
    "p = FlexibleArgumentParser(); add_cli_args(p); r = main(p.parse_args(sys.argv[1:]))\n"
    "print('RESULT ' + json.dumps({k: v for k, v in r.items() if isinstance(v, (int, float))}))\n"
)
TOPICS = ["the ocean", "mountains", "jazz", "coffee", "trains", "chess", "gardening", "the moon"] * 2


def meter() -> list[dict]:
    """Record latency and usage of every openai-backend request of this process."""
    from convoforge.llm.openai_backend import OpenAIChatModel

    records: list[dict] = []
    inner = OpenAIChatModel._agenerate

    async def metered(self, messages, params, json_schema=None):
        start = time.perf_counter()
        result = await inner(self, messages, params, json_schema)
        records.append(
            {
                "s": time.perf_counter() - start,
                "prompt": result.usage.prompt_tokens,
                "completion": result.usage.completion_tokens,
                "n": len(result.texts),
            }
        )
        return result

    OpenAIChatModel._agenerate = metered
    return records


async def pipeline(base_url: str, args: argparse.Namespace, records: list[dict]) -> dict:
    from convoforge.agents.persona.context import PersonaContext
    from convoforge.agents.persona.run import RunConfig, run_persona_pipeline
    from convoforge.critics import DEFAULT_CRITICS

    ctx = PersonaContext(
        iterations=args.iterations,
        pairs=args.pairs,
        candidates=2,
        persona_target=2,
        query_steps=1,
        min_turns=3,
        max_tokens=320,
        check_contradictions=False,
        few_shot=2,
    )
    with tempfile.TemporaryDirectory() as tmp:
        cfg = RunConfig(
            out=str(Path(tmp) / "p"),
            seed=None,
            model="openai:smollm2",
            critic_model="openai:smollm2",
            critics=list(DEFAULT_CRITICS),
            base_url=base_url,
            context=ctx.as_dict(),
        )
        start = time.perf_counter()
        summary = await run_persona_pipeline(cfg)
        wall = time.perf_counter() - start
    completion = sum(r["completion"] for r in records)
    return {
        "conversations": summary["accepted"] + summary["rejected"],
        "accepted": summary["accepted"],
        "requests": len(records),
        "wall_s": round(wall, 1),
        "output_tokens": completion,
        "output_tokens_per_s": round(completion / wall, 2),
        "mean_prompt_tokens": round(statistics.fmean(r["prompt"] for r in records)),
        "mean_output_tokens_per_request": round(completion / len(records)),
        "mean_in_flight": round(sum(r["s"] for r in records) / wall, 2),
        "backend_failures": summary["backend_failures"],
    }


def vllm_bench(python: Path, base_url: str, tokenizer: Path, shape: dict) -> dict:
    root = base_url.removesuffix("/v1")
    cmd = [str(python), "-c", BENCH, "--backend", "openai-chat", "--base-url", root]
    cmd += ["--endpoint", "/v1/chat/completions", "--model", "smollm2", "--tokenizer", str(tokenizer)]
    cmd += ["--dataset-name", "random", "--random-input-len", str(shape["mean_prompt_tokens"])]
    cmd += ["--random-output-len", str(max(1, shape["mean_output_tokens_per_request"]))]
    cmd += ["--num-prompts", str(shape["requests"]), "--ignore-eos", "--disable-tqdm"]
    cmd += ["--max-concurrency", str(max(1, round(shape["mean_in_flight"]))), "--seed", "0"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"vLLM's benchmark failed: {(done.stderr or done.stdout)[-800:]}")
    r = json.loads(line.removeprefix("RESULT "))
    return {
        "output_tokens_per_s": round(r["output_throughput"], 2),
        "requests": r.get("completed"),
        "max_concurrency": max(1, round(shape["mean_in_flight"])),
        "duration_s": round(r["duration"], 1),
    }


async def tokens_per_s(model, concurrency: int, max_tokens: int = 64) -> float:
    from convoforge.llm import GenParams

    prompts = [f"Write a long story about {TOPICS[i % len(TOPICS)]}." for i in range(concurrency)]
    params = GenParams(max_tokens=max_tokens, temperature=0.8)
    start = time.perf_counter()
    results = await asyncio.gather(*[model.achat(p, params) for p in prompts])
    return round(sum(r.usage.completion_tokens for r in results) / (time.perf_counter() - start), 2)


async def backend_curve(spec: str, base_url: str | None) -> dict:
    from convoforge.llm import load_chat_model

    model = load_chat_model(spec, base_url=base_url)
    await tokens_per_s(model, 2, 8)  # warm
    curve = {str(c): await tokens_per_s(model, c) for c in (1, 8, 16)}
    await model.aclose()
    return curve


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", default=None)
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--iterations", type=int, default=1)
    ap.add_argument("--local", action="store_true")
    args = ap.parse_args()
    from convoforge.llm.local import resolve_weights
    from convoforge.llm.vllm_server import VLLMServer, ensure_venv

    result: dict = {"benchmark": "vllm_pipeline", "cpus": os.cpu_count()}
    if args.local and not args.base_url:
        result["local_tokens_per_s"] = asyncio.run(backend_curve("local:smollm2-135m", None))
    server = None
    if args.base_url is None:
        server = VLLMServer().start()
    base_url = args.base_url or server.base_url
    try:
        records = meter()
        result["pipeline"] = asyncio.run(pipeline(base_url, args, records))
        result["vllm_bench"] = vllm_bench(ensure_venv(), base_url, resolve_weights("smollm2-135m"), result["pipeline"])
        ratio = result["pipeline"]["output_tokens_per_s"] / result["vllm_bench"]["output_tokens_per_s"]
        result["pipeline_efficiency"] = round(ratio, 3)
        if args.local:
            result["vllm_tokens_per_s"] = asyncio.run(backend_curve("openai:smollm2", base_url))
            if args.base_url:
                result["local_tokens_per_s"] = asyncio.run(backend_curve("local:smollm2-135m", None))
    finally:
        if server is not None:
            server.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
