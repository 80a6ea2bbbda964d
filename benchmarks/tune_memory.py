"""Memory of one `generate personas --tune-steps` tuning: peak RSS while it trains, RSS once it is done.

Run: python benchmarks/tune_memory.py [--steps 4] [--rows 8]
Each setting runs in its own process (its peak is its own): the step's two rows at once (`accumulation 1`) and one
at a time (`accumulation 2`, what the run uses), each with the memory handed back after (`release_memory`) or not.
The winners are the shipped seed conversations in the generator's own prompt, as a run writes them. Prints one
JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path


def rss_mb() -> float:
    """This process's resident memory now, MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def winners(rows: int) -> list[dict]:
    """Seed conversations as accepted records, each with the generator prompt it would have been written in."""
    from convoforge.agents.persona.context import PersonaContext
    from convoforge.agents.persona.seeds import load_seeds
    from convoforge.agents.persona.stages import GenerationJob, generator_messages

    examples = load_seeds(None).examples
    out = []
    for k in range(rows):
        example, shown = examples[k % len(examples)], examples[(k + 1) % len(examples)]
        job = GenerationJob(f"p{k}", 0, example["profiles"], [shown])
        prompt = generator_messages(job, PersonaContext(min_turns=3, max_turns=7))
        messages = [{"speaker": s, "content": t} for s, t in example["turns"]]
        out.append({"id": f"w{k}", "profiles": example["profiles"], "messages": messages, "prompt": json.dumps(prompt)})
    return out


def run_one(accumulation: int, release: bool, steps: int, rows: int) -> dict:
    """One tuning in this process; its memory figures."""
    import convoforge.training.winners as tuning

    records = winners(rows)
    before = rss_mb()
    if not release:
        tuning.release_memory = lambda: None
    with tempfile.TemporaryDirectory() as tmp:
        spec = "local:smollm2-135m+adapter=persona-generator+bias=persona-generator"
        _, info = tuning.tune_on_winners(spec, records, Path(tmp) / "tuned", steps, 2e-4, 0, accumulation=accumulation)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "accumulation": accumulation,
        "release": release,
        "rss_before_mb": round(before),
        "peak_rss_mb": round(peak),
        "rss_after_mb": round(rss_mb()),
        "loss": [info["first_loss"], info["last_loss"]],
        "chars_per_row": round(sum(len(r["prompt"]) + len(str(r["messages"])) for r in records) / len(records)),
    }


def main() -> None:
    """Each setting in a child process; one JSON line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--child", default="")
    args = parser.parse_args()
    if args.child:
        accumulation, release = args.child.split(",")
        print(json.dumps(run_one(int(accumulation), release == "1", args.steps, args.rows)))
        return
    results = []
    for child in ("1,0", "2,0", "2,1"):
        cmd = [sys.executable, __file__, "--child", child, "--steps", str(args.steps), "--rows", str(args.rows)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(json.dumps({"benchmark": "tune_memory", "steps": args.steps, "rows": args.rows, "runs": results}))


if __name__ == "__main__":
    main()
