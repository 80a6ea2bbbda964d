"""Critics measured as judges: real conversations against corrupted copies (`convoforge eval critics`)."""

from __future__ import annotations

import random

from sklearn.metrics import roc_auc_score

from convoforge.critics.base import Candidate, Critic, Turn, Verdict, verdicts_by_id
from convoforge.critics.corrupt import INSULTS, corrupt_all, targets_of
from convoforge.critics.selection import select
from convoforge.llm.base import ChatModel


def candidate(cid: str, pair_id: str, row: dict) -> Candidate:
    """A reference row as a critic's candidate."""
    return Candidate(
        id=cid,
        pair_id=pair_id,
        iteration=0,
        profiles=row["profiles"],
        turns=[Turn(speaker=s, content=t) for s, t in row["turns"]],
    )


def goodness(critic: Critic, verdict: Verdict) -> float | None:
    """A verdict as 'higher means more like a real conversation', or None when it says nothing."""
    if not verdict.valid:
        return None
    if verdict.score is not None:
        return verdict.score if getattr(critic, "higher_is_better", True) else -verdict.score
    return None if verdict.passed is None else float(verdict.passed)


def _auc(real: list[float], bad: list[float]) -> float | None:
    if not real or not bad:
        return None
    return round(float(roc_auc_score([1] * len(real) + [0] * len(bad), real + bad)), 4)


def _pairwise(critic: Critic) -> bool:
    return getattr(critic, "mode", "pointwise") == "pairwise"


async def evaluate_critics(
    critics: list[Critic], llm: ChatModel, rows: list[dict], kinds: list[str], seed: int = 0
) -> dict:
    """Per critic: valid-answer rate and AUC per corruption; for the mixture: the share of pairs it keeps real."""
    bad = corrupt_all(rows, kinds, seed=seed, insults=INSULTS)
    rng = random.Random(seed)
    pairs = []  # (pair id, kind, real candidate, corrupted candidate, real first?)
    for n, (i, kind, row) in enumerate(bad):
        pid = f"p{n}"
        pairs.append((pid, kind, candidate(f"{pid}:real", pid, rows[i]), candidate(f"{pid}:bad", pid, row), i))
    order = {pid: rng.random() < 0.5 for pid, *_ in pairs}  # which one selection sees first (ties keep the first)
    table: dict[str, dict[str, Verdict]] = {}
    report: dict = {}
    for critic in critics:
        if _pairwise(critic):
            cands = [c for pid, _, r, b, _ in pairs for c in ((r, b) if order[pid] else (b, r))]
            found = await verdicts_by_id(critic, cands, llm)
        else:  # a pointwise critic judges each real conversation once
            reals = {i: candidate(f"real{i}", f"real{i}", rows[i]) for *_, i in pairs}
            unique = [*reals.values(), *(b for _, _, _, b, _ in pairs)]
            judged = await verdicts_by_id(critic, unique, llm)
            found = {b.id: judged[b.id] for _, _, _, b, _ in pairs}
            found |= {r.id: judged[f"real{i}"] for _, _, r, _, i in pairs}
        table[critic.name] = found
        scores: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in kinds}
        for _, kind, r, b, _ in pairs:
            for side, cand in ((0, r), (1, b)):
                if (g := goodness(critic, found[cand.id])) is not None:
                    scores[kind][side].append(g)
        verdicts = list(found.values())
        entry: dict = {
            "role": critic.role,
            "valid_rate": round(sum(v.valid for v in verdicts) / max(len(verdicts), 1), 4),
            "auc": {k: _auc(*scores[k]) for k in kinds},
            "own": list(targets_of(critic.name)),
        }
        own = [entry["auc"][k] for k in entry["own"] if entry["auc"].get(k) is not None]
        entry["own_auc_min"] = min(own) if own else None
        if critic.role == "filter":
            entry["pass_real"] = _rate([found[r.id].passed for _, _, r, _, _ in pairs])
            entry["pass_corrupted"] = {
                k: _rate([found[b.id].passed for _, kk, _, b, _ in pairs if kk == k]) for k in kinds
            }
        invalid = [v for v in verdicts if not v.valid]
        if invalid:
            entry["invalid_example"] = {"error": (invalid[0].error or "")[:200], "raw": invalid[0].raw[:200]}
        report[critic.name] = entry
    kept: dict[str, list[bool]] = {k: [] for k in kinds}
    for pid, kind, r, b, _ in pairs:
        cands = [r, b] if order[pid] else [b, r]
        outcome = select(cands, table, critics)[pid]
        kept[kind].append(outcome.winner == r.id)
    every = [x for v in kept.values() for x in v]
    mixture = {
        "critics": [c.name for c in critics],
        "pairs": len(every),
        "keeps_real": round(sum(every) / max(len(every), 1), 4),
        "by_corruption": {k: round(sum(v) / len(v), 4) if v else None for k, v in kept.items()},
    }
    return {"conversations": len(rows), "pairs": len(pairs), "critics": report, "mixture": mixture}


def _rate(flags: list[bool | None]) -> float | None:
    known = [f for f in flags if f is not None]
    return round(sum(known) / len(known), 4) if known else None
