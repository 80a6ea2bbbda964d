"""Trained quality experts: logistic heads on MiniLM turn embeddings and conversation statistics.

The prompted SmolLM2-135M experts answer valid JSON under a grammar but judge at chance
(README Results), so on the embedded model each FED dimension is a small head trained by
`convoforge train critics` on real conversations (the reference's training part) against
corrupted copies of them, its own corruptions weighted up. Heads ship in `critics/models/`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from itertools import pairwise
from pathlib import Path

import numpy as np

from convoforge.critics.toxicity import lexicon_pattern
from convoforge.errors import ConvoforgeError
from convoforge.llm.embeddings import Embedder

TURN_HEAD = "turn_insult"  # a turn-level head (insulting turn or not) whose scores feed the statistics
_WORD = re.compile(r"[a-z']+")
STAT_NAMES = (
    "turns",
    "log_turns",
    "words_mean",
    "words_std",
    "distinct1",
    "distinct2",
    "questions",
    "exclamations",
    "alternation",
    "adjacent_mean",
    "adjacent_min",
    "adjacent_max",
    "adjacent_std",
    "skip2_mean",
    "repeat_max",
    "near_duplicates",
    "exact_duplicates",
    "toxic_turns",
    "insult_max",
    "insult_mean",
)


def _stats(turns: list[tuple[str, str]], vecs: np.ndarray, turn_head: Head) -> list[float]:
    texts = [t for _, t in turns]
    words = [_WORD.findall(t.lower()) for t in texts]
    counts = np.array([len(w) for w in words], dtype=np.float32)
    flat = [w for ws in words for w in ws]
    bigrams = [b for ws in words for b in pairwise(ws)]
    n = len(texts)
    sims = vecs @ vecs.T
    adj = np.array([sims[i, i + 1] for i in range(n - 1)]) if n > 1 else np.zeros(1)
    skip = np.array([sims[i, i + 2] for i in range(n - 2)]) if n > 2 else np.zeros(1)
    off = sims - np.eye(n) * 2
    earlier = [off[i, :i].max() if i else -1.0 for i in range(n)]
    normal = [" ".join(w) for w in words]
    toxic = lexicon_pattern()
    insult = turn_head.score(vecs)
    return [
        float(n),
        float(np.log1p(n)),
        float(counts.mean()),
        float(counts.std()),
        len(set(flat)) / max(len(flat), 1),
        len(set(bigrams)) / max(len(bigrams), 1),
        sum("?" in t for t in texts) / n,
        sum("!" in t for t in texts) / n,
        sum(turns[i][0] != turns[i + 1][0] for i in range(n - 1)) / max(n - 1, 1),
        float(adj.mean()),
        float(adj.min()),
        float(adj.max()),
        float(adj.std()),
        float(skip.mean()),
        float(off.max()) if n > 1 else 0.0,
        sum(e > 0.92 for e in earlier) / n,
        (n - len(set(normal))) / n,
        sum(bool(toxic.search(t)) for t in texts) / n,
        float(insult.max()),
        float(insult.mean()),
    ]


def features(
    embedder: Embedder, conversations: list[list[tuple[str, str]]], turn_head: Head | None = None
) -> np.ndarray:
    """One row per conversation: first, last, mean and max turn embedding, then the statistics."""
    turn_head = turn_head or load_head(TURN_HEAD)
    texts = list(dict.fromkeys(t for turns in conversations for _, t in turns if t.strip()))
    table = dict(zip(texts, embedder.embed(texts), strict=True)) if texts else {}
    dim = next(iter(table.values())).shape[0] if table else 384
    rows = []
    for turns in conversations:
        turns = [(s, t) for s, t in turns if t.strip()]
        if not turns:
            rows.append(np.zeros(4 * dim + len(STAT_NAMES), dtype=np.float32))
            continue
        vecs = np.stack([table[t] for _, t in turns]).astype(np.float32)
        pooled = [vecs[0], vecs[-1], vecs.mean(0), vecs.max(0)]
        rows.append(np.concatenate([*pooled, np.array(_stats(turns, vecs, turn_head), dtype=np.float32)]))
    return np.stack(rows)


@dataclass
class Head:
    """A standardised logistic head: P(real conversation) from features."""

    coef: np.ndarray
    intercept: float
    mean: np.ndarray
    scale: np.ndarray
    card: dict

    def score(self, x: np.ndarray) -> np.ndarray:
        """P(real) per row."""
        z = ((x - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def save(self, folder: Path, name: str) -> None:
        """Write NAME.safetensors and its card (NAME.json, and NAME.md for people)."""
        from safetensors.numpy import save_file

        folder.mkdir(parents=True, exist_ok=True)
        tensors = {
            "coef": self.coef.astype(np.float32),
            "intercept": np.array([self.intercept], dtype=np.float32),
            "mean": self.mean.astype(np.float32),
            "scale": self.scale.astype(np.float32),
        }
        save_file(tensors, str(folder / f"{name}.safetensors"))
        write_card(folder, name, self.card)


def write_card(folder: Path, name: str, card: dict, markdown: str | None = None, title: str | None = None) -> None:
    """A model card as NAME.json and as Markdown (at `markdown`, default NAME.md): data, command, figures."""
    (folder / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
    lines = [f"# {title or name}", "", card.get("kind", ""), ""]
    for key in ("data", "negatives", "insults", "tuned_by", "command", "trained"):
        if key in card:
            lines.append(f"- **{key}**: `{card[key]}`" if key == "command" else f"- **{key}**: {card[key]}")
    figures = {k: v for k, v in card.items() if k.endswith(("auc", "_auc")) or k in ("threshold", "energy_kept")}
    if figures:
        lines += ["", "## Figures", ""]
        lines += [f"- {k}: {json.dumps(v)}" for k, v in figures.items()]
    rest = {
        k: v
        for k, v in card.items()
        if k not in figures and k not in ("kind", "data", "negatives", "insults", "command", "trained")
    }
    if rest:
        lines += ["", "## Settings", ""] + [f"- {k}: {json.dumps(v)}" for k, v in rest.items()]
    lines += ["", "Rebuild: the command above (`convoforge train critics --help`).", ""]
    (folder / (markdown or f"{name}.md")).write_text("\n".join(lines))


def write_index(folder: Path) -> None:
    """README.md of a models folder: every head's card (data, command, figures) beside its safetensors."""
    parts = ["# convoforge's trained critic experts", "", "Each `NAME.safetensors` below has its card `NAME.json`",
             "and `NAME.md`; `faithfulness_lora/` has its own README.md.", ""]  # fmt: skip
    for card in sorted(folder.glob("*.md")):
        if card.name != "README.md" and card.with_suffix(".safetensors").is_file():
            parts += [f"## {card.stem}.safetensors", "", *card.read_text().splitlines()[1:], ""]
    (folder / "README.md").write_text("\n".join(parts))


def models_dir() -> Path:
    """The package folder that holds the shipped heads and projections."""
    return Path(str(resources.files("convoforge.critics").joinpath("models")))


@cache
def load_head(name: str, folder: str | None = None) -> Head:
    """A head by name from folder (the shipped models by default)."""
    from safetensors.numpy import load_file

    where = Path(folder) if folder else models_dir()
    path = where / f"{name}.safetensors"
    if not path.is_file():
        raise ConvoforgeError(f"no trained head {name!r} at {where} (rebuild: convoforge train critics)")
    t = load_file(str(path))
    card_path = where / f"{name}.json"
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    return Head(t["coef"], float(t["intercept"][0]), t["mean"], t["scale"], card)


def fit_head(x: np.ndarray, y: np.ndarray, weights: np.ndarray, seed: int = 0) -> tuple[Head, float]:
    """Fit a standardised L2 logistic head, its strength chosen by 3-fold CV; returns it and the chosen C."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    model = LogisticRegressionCV(
        Cs=[0.003, 0.01, 0.03, 0.1, 0.3],
        cv=3,
        max_iter=3000,
        scoring="roc_auc",
        l1_ratios=(0,),
        use_legacy_attributes=False,
    )
    model.fit(scaler.transform(x), y, sample_weight=weights)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    head = Head(model.coef_[0].astype(np.float32), float(model.intercept_[0]), scaler.mean_, scale, {})
    return head, float(np.ravel(model.C_)[0])
