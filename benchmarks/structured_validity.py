"""Valid-answer rate of every structured role on the embedded model (one JSON line).

Each role's own prompt and schema, on the shipped seed conversations, personas and sample
catalogue: the five quality experts (pointwise and pairwise), the LLM faithfulness and
toxicity judges, the profile contradiction check, the recommender's manager and ranker.
Target: >= 99% valid with grammar-constrained decoding.

    python benchmarks/structured_validity.py [--per-role 24] [--no-constrained]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from importlib import resources

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

USER_TURNS = [
    "Hi! I loved The Dark Knight. Something similar but less violent?",
    "I want a funny movie for a family night.",
    "I've seen that one. Why would I like the first one?",
    "Anything with Tom Hanks from the nineties?",
    "Not that, I hate horror movies.",
    "Thanks, that sounds great!",
]


def jobs(per_role: int, rng: random.Random) -> list[tuple[str, str, type]]:
    from convoforge.agents.persona import prompts as persona_prompts
    from convoforge.agents.persona.seeds import shipped_examples
    from convoforge.agents.persona.stages import Contradicts
    from convoforge.agents.recommender import prompts as rec_prompts
    from convoforge.agents.recommender.graph import DecisionAnswer, Fit
    from convoforge.critics.faithfulness import Contradiction
    from convoforge.critics.prompts import FAITHFULNESS, FED_POLICIES, PAIRWISE, POINTWISE, TOXICITY
    from convoforge.critics.quality import Score, Winner
    from convoforge.critics.toxicity import ToxicAnswer
    from convoforge.datasets.catalog import load_catalog

    convos = shipped_examples()

    def transcript(c: dict) -> str:
        return "\n".join(f"{s}: {t}" for s, t in c["turns"])

    out = []
    for i in range(per_role):
        c, d = convos[i % len(convos)], convos[(i + 1) % len(convos)]
        policy = list(FED_POLICIES.values())[i % len(FED_POLICIES)]
        out.append(("quality_pointwise", POINTWISE.format(conversation=transcript(c), policy=policy), Score))
        out.append(("quality_pairwise", PAIRWISE.format(a=transcript(c), b=transcript(d), policy=policy), Winner))
        profiles = "\n".join(f"Profile of {s}: {' '.join(a)}" for s, a in c["profiles"].items())
        out.append(
            ("faithfulness_llm", FAITHFULNESS.format(profiles=profiles, conversation=transcript(c)), Contradiction)
        )
        out.append(("toxicity_llm", TOXICITY.format(conversation=transcript(c)), ToxicAnswer))
        attrs = [a for p in c["profiles"].values() for a in p]
        statement = rng.choice([a for p in d["profiles"].values() for a in p])
        out.append(
            (
                "contradiction",
                persona_prompts.CONTRADICTION.format(profile="\n".join(attrs), statement=statement),
                Contradicts,
            )
        )
        convo = "\n".join(f"user: {t}" for t in USER_TURNS[: 1 + i % 3]) + f"\nuser: {USER_TURNS[i % len(USER_TURNS)]}"
        out.append(("manager", rec_prompts.MANAGER.format(profile="none", conversation=convo), DecisionAnswer))
    catalog = load_catalog(str(resources.files("convoforge.agents.recommender").joinpath("data/sample_movies.jsonl")))
    for i in range(per_role):
        item = catalog.items[i % len(catalog.items)]
        prefs = USER_TURNS[i % len(USER_TURNS)]
        out.append(("ranker", rec_prompts.RANKER.format(preferences=prefs, item=item.text()), Fit))
    return out


async def measure(model, work: list[tuple[str, str, type]]) -> dict:
    from convoforge.agents.recommender.graph import MANAGER_PARAMS
    from convoforge.critics.quality import JUDGE_PARAMS
    from convoforge.llm import GenParams, astructured

    params = {
        "manager": MANAGER_PARAMS,
        "ranker": GenParams(temperature=0.0, max_tokens=160),
        "contradiction": GenParams(temperature=0.0, max_tokens=24),
    }
    results = await asyncio.gather(
        *[astructured(model, p, s, params.get(r, JUDGE_PARAMS), retries=0) for r, p, s in work]
    )
    roles: dict[str, dict] = {}
    for (role, _, _), res in zip(work, results, strict=True):
        entry = roles.setdefault(role, {"n": 0, "valid": 0, "example": None, "bad": None})
        entry["n"] += 1
        entry["valid"] += res.ok
        if res.ok and entry["example"] is None:
            entry["example"] = res.raw[:160]
        if res.ok and hasattr(res.value, "contradicts"):
            entry["says_contradicts"] = entry.get("says_contradicts", 0) + bool(res.value.contradicts)
        if not res.ok and entry["bad"] is None:
            entry["bad"] = {"raw": res.raw[:160], "error": res.errors[-1][:160] if res.errors else ""}
    for entry in roles.values():
        entry["valid_rate"] = round(entry["valid"] / entry["n"], 4)
        if "says_contradicts" in entry:
            entry["says_contradicts"] = round(entry["says_contradicts"] / max(entry["valid"], 1), 4)
    return roles


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-role", type=int, default=24)
    parser.add_argument("--no-constrained", action="store_true", help="parse only, no grammar mask")
    args = parser.parse_args()
    from convoforge.llm import load_chat_model

    model = load_chat_model("local:smollm2-135m")
    if args.no_constrained:
        model.supports_json_schema = False
    started = time.perf_counter()
    roles = asyncio.run(measure(model, jobs(args.per_role, random.Random(0))))
    print(
        json.dumps(
            {
                "benchmark": "structured_validity",
                "model": model.name,
                "constrained": model.supports_json_schema,
                "min_valid_rate": min(r["valid_rate"] for r in roles.values()),
                "roles": roles,
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
