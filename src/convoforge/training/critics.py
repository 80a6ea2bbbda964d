"""Train the embedded model's experts: quality heads and the faithfulness projection (`convoforge train critics`)."""

from __future__ import annotations

import datetime
import json
import random
import shutil
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from convoforge.critics.corrupt import CORRUPTIONS, INSULTS, TARGETS, TRAIN_INSULTS, corrupt_all
from convoforge.critics.faithfulness import ADAPTER, faithfulness_score
from convoforge.critics.faithfulness_data import attribute_pairs, split_of
from convoforge.critics.prompts import FED_POLICIES
from convoforge.critics.trained import STAT_NAMES, TURN_HEAD, Head, features, fit_head, write_card, write_index
from convoforge.errors import ConvoforgeError
from convoforge.llm.embeddings import EMBEDDED_EMBEDDER, Embedder

QUALITY_KINDS = [k for k in CORRUPTIONS if k != "persona_swap"]  # persona swaps leave the turns as they are
OWN_WEIGHT, OTHER_WEIGHT = 1.0, 0.1


def _turns(row: dict) -> list[tuple[str, str]]:
    return [(s, t) for s, t in row["turns"]]


def train_turn_head(embedder: Embedder, rows: list[dict], seed: int = 0, size: int = 3000) -> Head:
    """Insulting turn or not, on MiniLM turn vectors: real turns against real turns with a training insult added."""
    rng = random.Random(seed)
    turns = [t for r in rows for _, t in r["turns"] if t.strip()]
    clean = rng.sample(turns, min(size, len(turns)))
    dirty = [f"{rng.choice(turns)} {rng.choice(TRAIN_INSULTS)}" for _ in range(len(clean))]
    x = embedder.embed(clean + dirty)
    y = np.array([0] * len(clean) + [1] * len(dirty))
    head, c = fit_head(x, y, np.ones(len(y)), seed)
    head.card = {"kind": "logistic head on MiniLM turn vectors: P(the turn insults)", "turns": len(y), "C": c}
    return head


def heldout_turn_auc(embedder: Embedder, rows: list[dict], head: Head, seed: int = 0, size: int = 2000) -> float:
    """The turn head's AUC on held-out turns against the same turns with an evaluation insult added."""
    rng = random.Random(seed)
    turns = [t for r in rows for _, t in r["turns"] if t.strip()]
    clean = rng.sample(turns, min(size, len(turns)))
    dirty = [f"{t} {rng.choice(INSULTS)}" for t in clean]
    scores = head.score(embedder.embed(clean + dirty))
    return round(float(roc_auc_score([0] * len(clean) + [1] * len(dirty), scores)), 4)


def quality_training_set(
    embedder: Embedder, rows: list[dict], negatives: list[list[tuple[str, str]]], turn_head: Head, seed: int = 0
) -> tuple[np.ndarray, list[str]]:
    """Features of real rows, their corruptions (training insults) and extra negatives; the kind of each row."""
    bad = corrupt_all(rows, QUALITY_KINDS, seed=seed, insults=TRAIN_INSULTS)
    convos = [_turns(r) for r in rows] + [_turns(b) for _, _, b in bad] + negatives
    kinds = ["real"] * len(rows) + [k for _, k, _ in bad] + ["generated"] * len(negatives)
    return features(embedder, convos, turn_head), kinds


def train_quality_heads(
    embedder: Embedder, rows: list[dict], negatives: list[list[tuple[str, str]]], turn_head: Head, seed: int = 0
) -> dict[str, tuple]:
    """One head per FED dimension: real vs corrupted, its own corruptions (and generated negatives) weighted up."""
    x, kinds = quality_training_set(embedder, rows, negatives, turn_head, seed)
    y = np.array([k == "real" for k in kinds], dtype=int)
    heads = {}
    for dim in FED_POLICIES:
        name = f"quality_{dim}"
        own = set(TARGETS[name]) | {"generated"}
        w = np.array([1.0 if k == "real" else OWN_WEIGHT if k in own else OTHER_WEIGHT for k in kinds])
        w[y == 1] *= w[y == 0].sum() / max((y == 1).sum(), 1)  # both classes weigh the same
        head, c = fit_head(x, y, w, seed)
        heads[name] = (head, c, sorted(own - {"generated"}))
    return heads


def train_faithfulness_scorer(
    rows: list[dict], out: Path, rank: int = 96, seed: int = 0, tuned_from: Path | None = None
) -> dict:
    """Tune MiniLM on (attribute, all its speaker says) with in-batch negatives, then keep it as a rank-r LoRA.

    tuned_from: a model that `convoforge train faithfulness --epochs 2` already tuned (the same training).
    """
    import tempfile

    from convoforge.training.embedder import extract_adapter, tune_embedder

    pairs = attribute_pairs(rows)
    random.Random(seed).shuffle(pairs)
    work = Path(tempfile.mkdtemp(prefix="convoforge-faith-"))
    record_only = tuned_from is not None
    try:
        if tuned_from is None:
            tuned = tune_embedder(pairs, work / "full", epochs=2.0, symmetric=True, seed=seed)
            tuned_from = work / "full"
        else:
            record = tuned_from / "convoforge_training.json"
            tuned = json.loads(record.read_text()) if record.is_file() else {}
        summary = extract_adapter(tuned_from, out, rank=rank)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    how = (
        f"convoforge train faithfulness --data REFERENCE --out {tuned_from.name} --epochs 2, then compressed here"
        if record_only
        else "tuned by this command (2 epochs), then compressed"
    )
    return {
        "tuned_by": how,
        "pairs": len(pairs),
        "steps": tuned.get("steps"),
        "train_loss": tuned.get("train_loss"),
        **summary,
    }


def faithfulness_figures(embedder: Embedder, rows: list[dict], unit: str, seed: int = 0, limit: int = 400) -> dict:
    """`eval personas`' AUCs (pair, attribute) on a seeded sample of rows."""
    from convoforge.agents.persona.evaluate import evaluate
    from convoforge.datasets.spc import as_row

    sample = random.Random(seed).sample(rows, min(limit, len(rows)))
    report, _ = evaluate(embedder, [as_row(r) for r in sample], with_aucs=True, seed=seed, unit=unit)
    return {"pair": report["faithfulness_auc_pair"], "attribute": report["faithfulness_auc_attribute"]}


def swapped_scores(embedder: Embedder, rows: list[dict], seed: int = 0) -> list[float]:
    """Each conversation scored against the profiles of another (a seeded derangement)."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n = len(order)
    return [
        faithfulness_score(embedder, rows[order[(k + 1) % n]]["profiles"], _speaker_turns(rows[order[k]]), "text")
        for k in range(n)
    ]


def _speaker_turns(row: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for s, t in row["turns"]:
        out.setdefault(s, []).append(t)
    return out


def heldout_head_figures(
    embedder: Embedder, rows: list[dict], heads: dict[str, Head], turn_head: Head, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Each head's AUC per corruption on held-out rows, with the evaluation insults (as `eval critics` builds them)."""
    bad = corrupt_all(rows, QUALITY_KINDS, seed=seed, insults=INSULTS)
    real = features(embedder, [_turns(r) for r in rows], turn_head)
    worse = features(embedder, [_turns(b) for _, _, b in bad], turn_head)
    kinds = [k for _, k, _ in bad]
    out = {}
    for name, head in heads.items():
        good, broken = head.score(real), head.score(worse)
        out[name] = {
            k: round(float(roc_auc_score([1] * len(good) + [0] * len(m), [*good, *broken[m]])), 4)
            for k in QUALITY_KINDS
            if len(m := np.array([i for i, kk in enumerate(kinds) if kk == k], dtype=int))
        }
    return out


def read_negatives(folders: list[Path]) -> list[list[tuple[str, str]]]:
    """Rejected candidates of `generate personas` datasets, as turn lists."""
    from convoforge.datasets.records import read_dataset

    out = []
    for folder in folders:
        data = read_dataset(folder)
        if "rejected" not in data:
            raise ConvoforgeError(f"{folder} has no rejected split")
        out += [[(m["speaker"], m["content"]) for m in r["messages"]] for r in data["rejected"] if r["messages"]]
    return out


def train_critics(
    reference: Path,
    out: Path,
    negatives: list[Path] | None = None,
    embedder: Embedder | None = None,
    limit: int | None = None,
    seed: int = 0,
    force: bool = False,
    command: str = "",
    faithfulness: bool = True,
    scorer_from: Path | None = None,
) -> dict:
    """Train every head and the projection on the reference's training part; write them with cards into out."""
    from convoforge.datasets.spc import read_spc
    from convoforge.llm.embeddings import load_embedder

    if not reference.is_file():
        raise ConvoforgeError(f"no reference CSV at {reference}")
    existing = list(out.glob("*.safetensors")) if out.is_dir() else []
    if existing and not force:
        raise ConvoforgeError(f"{out} already holds trained experts; pass --force to replace them")
    embedder = embedder or load_embedder()
    every = read_spc(reference)
    all_train = [r for r in every if split_of(r) == "train"]
    all_test = [r for r in every if split_of(r) == "test"]
    rows = [r for r in all_train if len(r["turns"]) >= 4]
    if limit:
        rows = random.Random(seed).sample(rows, min(limit, len(rows)))
    if len(rows) < 20:
        raise ConvoforgeError(f"only {len(rows)} training conversations in {reference}; need at least 20")
    extra = read_negatives(negatives or [])
    when = datetime.date.today().isoformat()
    base_card = {
        "data": f"{reference.name}: training part (profile hash >= 0.4), {len(rows)} conversations",
        "command": command or "convoforge train critics --reference SPC.csv --out DIR",
        "trained": when,
    }
    tmp = out.parent / f".{out.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    summary: dict = {"train_conversations": len(rows), "generated_negatives": len(extra), "heads": {}}
    turn_head = train_turn_head(embedder, rows, seed)
    test_rows = [r for r in all_test if len(r["turns"]) >= 4]
    turn_head.card = {
        **base_card,
        **turn_head.card,
        "insults": f"{len(TRAIN_INSULTS)} templated training insults",
        "heldout_auc": heldout_turn_auc(embedder, test_rows, turn_head, seed),
        "heldout": "held-out turns against the same turns with one of the evaluation insults added",
    }
    turn_head.save(tmp, TURN_HEAD)
    trained_heads = train_quality_heads(embedder, rows, extra, turn_head, seed)
    figures = heldout_head_figures(embedder, test_rows, {n: h for n, (h, _, _) in trained_heads.items()}, turn_head)
    for name, (head, c, own) in trained_heads.items():
        head.card = {
            **base_card,
            "kind": "logistic head on MiniLM turn embeddings (first, last, mean, max) and statistics",
            "statistics": list(STAT_NAMES),
            "negatives": f"corruptions {', '.join(QUALITY_KINDS)} (own: {', '.join(own)}, weight {OWN_WEIGHT}; "
            f"others {OTHER_WEIGHT}), {len(extra)} generated rejected candidates",
            "C": c,
            "heldout_auc": figures[name],
            "heldout": f"{len(test_rows)} held-out conversations (profile hash < 0.4) against their corruptions, "
            "insults worded unlike the training ones",
        }
        head.save(tmp, name)
        summary["heads"][name] = {"C": c, "own": own, "heldout_auc": figures[name]}
    if faithfulness:
        scorer = tmp / ADAPTER
        trained = train_faithfulness_scorer(all_train, scorer, seed=seed, tuned_from=scorer_from)
        tuned = Embedder(f"{EMBEDDED_EMBEDDER}+adapter={scorer}")
        fit = faithfulness_figures(tuned, all_train, "text", seed)
        heldout = faithfulness_figures(tuned, all_test, "text", seed)
        threshold = float(np.quantile(swapped_scores(tuned, all_train, seed), 0.97))
        card = {
            **base_card,
            "data": f"{reference.name}: training part (profile hash >= 0.4), {len(all_train)} conversations",
            "kind": "LoRA on all-MiniLM-L6-v2: a full fine-tune (symmetric in-batch loss on (attribute, all its "
            "speaker says), 2 epochs) kept as a truncated SVD of each linear layer's change",
            **trained,
            "unit": "text",
            "threshold": round(threshold, 4),
            "threshold_rule": "97th percentile of training conversations scored against another pair's profiles "
            "(3% of unfaithful training conversations pass)",
            "train_auc": {"pair": fit["pair"], "attribute": fit["attribute"]},
            "heldout_auc": {"pair": heldout["pair"], "attribute": heldout["attribute"]},
        }
        write_card(scorer, "convoforge_card", card, markdown="README.md", title=ADAPTER)  # replaces PEFT's template
        summary["faithfulness"] = {k: card[k] for k in ("threshold", "train_auc", "heldout_auc", "energy_kept")}
    out.mkdir(parents=True, exist_ok=True)
    for path in tmp.iterdir():
        if (out / path.name).is_dir():
            shutil.rmtree(out / path.name)
        path.replace(out / path.name)
    tmp.rmdir()
    write_index(out)
    return summary
