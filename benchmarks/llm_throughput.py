"""Local backend throughput: tokens/s at 1/4/8/16 concurrent requests, load times, memory, constrained JSON.

Run: python benchmarks/llm_throughput.py [--max-tokens 48] [--concurrency 1,4,8,16] [--max-batch N]
    [--structured 8] [--rounds 3]
Prints one JSON line. Targets (2-core CPU): >= 6x tokens/s at 8 concurrent vs sequential,
warm load <= 5 s; grammar-constrained JSON (--structured concurrent requests, runs interleaved
with the same requests unconstrained) costs <= 15% of tokens/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

LOAD = (
    "import time,json; t=time.perf_counter(); from convoforge.llm import load_chat_model; "
    "m=load_chat_model('local:smollm2-135m'); "
    "print(json.dumps({'load_s': m.load_seconds, 'process_s': time.perf_counter()-t}))"
)
TOPICS = [
    "the ocean",
    "mountains",
    "jazz music",
    "coffee",
    "trains",
    "chess",
    "gardening",
    "the moon",
]


def load_time(cache: str | None) -> dict:
    env = dict(os.environ, **({"CONVOFORGE_CACHE": cache} if cache else {}))
    out = subprocess.run([sys.executable, "-c", LOAD], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# a schema whose answer cannot end before max_tokens, so both runs decode the same number of tokens per row
PARAGRAPH = {
    "type": "object",
    "properties": {
        "topic": {"type": "string", "maxLength": 40},
        "paragraph": {"type": "string", "minLength": 2000, "maxLength": 4000},
    },
    "required": ["topic", "paragraph"],
}


async def throughput(model, concurrency: int, requests: int, max_tokens: int, schema: dict | None = None) -> float:
    from convoforge.llm import GenParams

    gate = asyncio.Semaphore(concurrency)
    params = GenParams(max_tokens=max_tokens, temperature=0.7, top_k=40)

    async def one(i: int) -> int:
        async with gate:
            prompt = f"Write a long paragraph about {TOPICS[i % len(TOPICS)]}."
            return (await model.achat(prompt, params, json_schema=schema)).usage.completion_tokens

    started = time.perf_counter()
    tokens = sum(await asyncio.gather(*[one(i) for i in range(requests)]))
    return tokens / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--skip-cold", action="store_true", help="skip the ~45 s cold conversion")
    parser.add_argument("--concurrency", default="1,4,8,16", help="comma-separated concurrent request counts")
    parser.add_argument("--max-batch", type=int, help="the batcher's batch size (default: the backend's own)")
    parser.add_argument("--structured", type=int, default=8, help="concurrency of the constrained-JSON run (0: skip)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved plain/constrained rounds")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    figures: dict = {
        "benchmark": "llm_throughput",
        "model": "local:smollm2-135m",
        "cpus": os.cpu_count(),
    }
    if not args.skip_cold:
        with tempfile.TemporaryDirectory() as cache:
            figures["cold_load_s"] = round(load_time(cache)["process_s"], 2)
    warm = load_time(None)
    figures["warm_load_s"] = round(warm["load_s"], 2)
    figures["warm_load_process_s"] = round(warm["process_s"], 2)

    from convoforge.llm.local import LocalChatModel

    model = LocalChatModel(**({"max_batch": args.max_batch} if args.max_batch else {}))
    figures["device"], figures["max_batch"] = model.device, model.batcher.max_batch
    asyncio.run(throughput(model, 1, 1, 8))  # warm-up
    tps = {}
    for concurrency in levels:
        requests = 4 if concurrency == 1 else 2 * concurrency
        tps[concurrency] = asyncio.run(throughput(model, concurrency, requests, args.max_tokens))
    figures["tokens_per_s"] = {str(c): round(v, 1) for c, v in tps.items()}
    if 1 in tps:  # only a run that measured one request at a time has a sequential baseline
        figures["speedup_vs_sequential"] = {str(c): round(v / tps[1], 2) for c, v in tps.items()}
    if args.structured and model.grammar is not None:
        c = args.structured
        plain, constrained = [], []
        for _ in range(args.rounds):  # interleaved, so machine noise hits both alike
            plain.append(asyncio.run(throughput(model, c, 2 * c, args.max_tokens)))
            constrained.append(asyncio.run(throughput(model, c, 2 * c, args.max_tokens, PARAGRAPH)))
        p, s = sum(plain) / len(plain), sum(constrained) / len(constrained)
        figures["structured"] = {
            "concurrency": c,
            "plain_tokens_per_s": round(p, 1),
            "constrained_tokens_per_s": round(s, 1),
            "cost": round(1 - s / p, 3),
            "mask_seconds": round(model.mask_seconds, 2),
        }
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
