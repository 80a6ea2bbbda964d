"""iEvaLM-style CRS evaluation on ReDial-format turns: original and interactive Recall@k."""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path
from typing import Any

from convoforge.datasets.catalog import Catalog, read_jsonl
from convoforge.datasets.metrics import mcnemar_exact
from convoforge.errors import ConvoforgeError
from convoforge.llm.base import ChatModel
from convoforge.simulators.user import SimulatedUser, UserControls


def load_turns(path: Path, catalog: Catalog, limit: int | None = None) -> list[dict]:
    """Turn records with their targets resolved to catalogue ids (records with none are skipped)."""
    if not path.is_file():
        raise ConvoforgeError(f"no turns file at {path}")
    turns = []
    for n, record in enumerate(read_jsonl(path, "iEvaLM turns, one JSON object a line"), 1):
        if "context" not in record or "rec" not in record:
            raise ConvoforgeError(f"{path}: record {n} needs 'context' and 'rec' (iEvaLM turn format)")
        targets = [it.id for name in record["rec"] if (it := catalog.find(name))]
        if targets:
            turns.append({**record, "targets": list(dict.fromkeys(targets))})
        if limit and len(turns) >= limit:
            break
    return turns


def hits(ranked: list[str], targets: list[str], ks: list[int]) -> list[dict[int, bool]]:
    """For each target (one example), whether it is in the top k."""
    return [{k: t in ranked[:k] for k in ks} for t in targets]


def paired(ours: list[dict[int, bool]], theirs: list[dict[int, bool]], ks: list[int]) -> dict[str, dict]:
    """Exact McNemar test per k on the same examples: found by one system only, and the two-sided p."""
    out = {}
    for k in ks:
        better = sum(a[k] and not b[k] for a, b in zip(ours, theirs, strict=True))
        worse = sum(b[k] and not a[k] for a, b in zip(ours, theirs, strict=True))
        out[f"recall@{k}"] = {"only_this": better, "only_versus": worse, "p": mcnemar_exact(better, worse)}
    return out


async def evaluate(
    agent: Any,
    catalog: Catalog,
    turns: list[dict],
    ks: list[int],
    mode: str,
    llm: ChatModel | None = None,
    rounds: int = 5,
    concurrency: int = 8,
    keep_hits: bool = False,
) -> dict:
    """Recall@k averaged over (turn, target) examples; interactive adds the simulator rounds.

    keep_hits=True adds `hits`, each example's found-in-top-k flags in turn order (for `paired`).
    """
    gate = asyncio.Semaphore(concurrency)
    if callable(warm := getattr(agent, "warm", None)):
        warm([[u for u in t["context"] if u] for t in turns])

    async def one(i: int, turn: dict) -> tuple[list[dict[int, bool]], int]:
        async with gate:
            context = [u for u in turn["context"] if u]
            ranked = await agent.recommend(context, k=max(ks))
            if mode == "original":
                return hits(ranked, turn["targets"], ks), 0
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
            return hits(ranked, turn["targets"], ks), used

    results = await asyncio.gather(*[one(i, t) for i, t in enumerate(turns)])
    found = [h for per_target, _ in results for h in per_target]
    report: dict[str, Any] = {
        "mode": mode,
        "turns": len(turns),
        "examples": len(found),
        **{f"recall@{k}": round(sum(h[k] for h in found) / len(found), 4) for k in ks},
    }
    if mode == "interactive":
        report["avg_rounds"] = round(statistics.fmean(u for _, u in results), 3)
        report["simulator"] = "llm" if llm else "template (attribute mode)"
    if keep_hits:
        report["hits"] = found
    return report
