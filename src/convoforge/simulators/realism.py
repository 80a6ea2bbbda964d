"""How real do simulated users sound? A real-vs-simulated discriminator and intent adherence."""

from __future__ import annotations

import ast
import random
import re
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from convoforge.datasets.catalog import REDIAL_DIALOGUES, read_jsonl
from convoforge.datasets.records import read_dataset
from convoforge.errors import ConvoforgeError
from convoforge.llm.embeddings import load_embedder

_MENTION = re.compile(r"@\d+")
DIALOG_KEYS = {"movieMentions", "messages", "initiatorWorkerId"}


def seeker_utterances(dialogs: Path) -> list[str]:
    """What ReDial seekers (the initiators) wrote, movie mentions replaced by their names."""
    if not dialogs.is_file():
        raise ConvoforgeError(f"no dialogues file at {dialogs}")
    out = []
    for n, d in enumerate(read_jsonl(dialogs, REDIAL_DIALOGUES), 1):
        if not DIALOG_KEYS <= set(d):
            raise ConvoforgeError(f"{dialogs}: record {n} needs {', '.join(sorted(DIALOG_KEYS))} (a ReDial dialogue)")
        mentions = d["movieMentions"]
        mentions = ast.literal_eval(mentions) if isinstance(mentions, str) else mentions or {}
        messages = ast.literal_eval(d["messages"]) if isinstance(d["messages"], str) else d["messages"]
        seeker = int(d["initiatorWorkerId"])
        for m in messages:
            if int(m["senderWorkerId"]) == seeker and m["text"].strip():
                out.append(
                    _MENTION.sub(lambda x, names=mentions: (names.get(x.group(0)[1:]) or "a movie").strip(), m["text"])
                )
    return out


def realism_report(sessions: Path, dialogs: Path, folds: int = 5, seed: int = 0) -> dict:
    """Cross-validated accuracy of LR on MiniLM vectors: real vs simulated, and intent from text."""
    data = read_dataset(sessions)
    split = data["sessions"] if "sessions" in data else next(iter(data.values()))
    turns = [m for r in split for m in r.get("messages") or []]
    if not all({"role", "content", "intent"} <= set(m) for m in turns):
        raise ConvoforgeError(f"{sessions} is not a `convoforge simulate` dataset (turns with role, content, intent)")
    simulated = [(m["content"], m["intent"]) for m in turns if m["role"] == "user"]
    if len(simulated) < 2 * folds:
        raise ConvoforgeError(f"{sessions} has {len(simulated)} simulated user turns; need at least {2 * folds}")
    real = seeker_utterances(dialogs)
    rng = random.Random(seed)
    real = rng.sample(real, min(len(real), len(simulated)))
    embedder = load_embedder()
    x = embedder.embed([t for t, _ in simulated] + real)
    y = np.array([1] * len(simulated) + [0] * len(real))
    clf = LogisticRegression(max_iter=2000)
    accuracy = cross_val_score(clf, x, y, cv=folds, scoring="accuracy").mean()
    report = {
        "simulated_turns": len(simulated),
        "real_turns": len(real),
        "discriminator_accuracy": round(float(accuracy), 4),
        "note": "0.5 means the discriminator cannot tell simulated from real seeker turns",
    }
    intents = np.array([i for _, i in simulated])
    counts = {i: int((intents == i).sum()) for i in set(intents)}
    usable = [i for i, c in counts.items() if c >= folds]
    mask = np.isin(intents, usable)
    if len(usable) >= 2:
        acc = cross_val_score(LogisticRegression(max_iter=2000), x[: len(simulated)][mask], intents[mask], cv=folds)
        report["intent_adherence"] = round(float(acc.mean()), 4)
        report["intent_majority_baseline"] = round(max(counts[i] for i in usable) / int(mask.sum()), 4)
    report["intents"] = counts
    return report
