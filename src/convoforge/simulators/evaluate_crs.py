"""iEvaLM-style CRS evaluation on ReDial-format turns: original and interactive Recall@k."""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path
from typing import Any

from convoforge.datasets.catalog import Catalog, read_jsonl
from convoforge.errors import ConvoforgeError
from convoforge.llm.base import ChatModel
from convoforge.simulators.user import SimulatedUser, UserControls


def load_turns(path: Path, catalog: Catalog, limit: int | None = None) -> list[dict]:
    """Turn records with their targets resolved to catalogue ids (records with none are skipped)."""
    if not path.is_file():
        raise ConvoforgeError(f"no turns file at {path}")
    turns = []
    for n, record in enumerate(read_jsonl(path), 1):
        if "context" not in record or "rec" not in record:
            raise ConvoforgeError(f"{path}: record {n} needs 'context' and 'rec' (iEvaLM turn format)")
        targets = [it.id for name in record["rec"] if (it := catalog.find(name))]
        if targets:
            turns.append({**record, "targets": list(dict.fromkeys(targets))})
        if limit and len(turns) >= limit:
            break
    return turns


def recall(ranked: list[str], targets: list[str], ks: list[int]) -> dict[int, float]:
    """Per-target recall (each target a separate example, as iEvaLM counts): share found in top k."""
    return {k: sum(t in ranked[:k] for t in targets) / len(targets) for k in ks}


async def evaluate(
    agent: Any,
    catalog: Catalog,
    turns: list[dict],
    ks: list[int],
    mode: str,
    llm: ChatModel | None = None,
    rounds: int = 5,
    concurrency: int = 8,
) -> dict:
    """Recall@k averaged over (turn, target) examples; interactive adds the simulator rounds."""
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int, turn: dict) -> tuple[dict[int, float], int, int]:
        async with gate:
            context = [u for u in turn["context"] if u]
            ranked = await agent.recommend(context, k=max(ks))
            if mode == "original":
                return recall(ranked, turn["targets"], ks), len(turn["targets"]), 0
            targets = [catalog.by_id[t] for t in turn["targets"]]
            user = SimulatedUser(UserControls(targets=turn["targets"], patience=rounds, seed=i), targets, llm)
            history, shown, used = list(context), set(), 0
            for r in range(rounds):
                if set(ranked[:50]) & set(turn["targets"]):
                    break
                names = [catalog.by_id[x].name for x in ranked[:3]]
                rec_text = "How about " + ", ".join(names) + "?"
                message = await user.utter(r + 1, [{"role": "assistant", "content": rec_text}], ranked[:3], names)
                history.append(message["content"])  # the user's words; the agent's own titles are not preferences
                shown |= set(ranked[:3])
                ranked = await agent.recommend(history, k=max(ks), exclude=shown)
                used = r + 1
            return recall(ranked, turn["targets"], ks), len(turn["targets"]), used

    results = await asyncio.gather(*[one(i, t) for i, t in enumerate(turns)])
    examples = sum(n for _, n, _ in results)
    report: dict[str, Any] = {
        "mode": mode,
        "turns": len(turns),
        "examples": examples,
        **{f"recall@{k}": round(sum(r[k] * n for r, n, _ in results) / examples, 4) for k in ks},
    }
    if mode == "interactive":
        report["avg_rounds"] = round(statistics.fmean(u for _, _, u in results), 3)
        report["simulator"] = "llm" if llm else "template (attribute mode)"
    return report
