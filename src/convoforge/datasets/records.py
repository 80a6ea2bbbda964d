"""Persona-dialogue records as a Hugging Face DatasetDict, written atomically with a card."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import datasets as hf_datasets
from datasets import Dataset, DatasetDict, Features, Sequence, Value, load_from_disk

from convoforge.errors import ConvoforgeError

VERDICT = {
    "critic": Value("string"),
    "valid": Value("bool"),
    "score": Value("float64"),
    "passed": Value("bool"),
    "label": Value("string"),
    "rationale": Value("string"),
    "raw": Value("string"),
    "error": Value("string"),
}

FEATURES = Features(
    {
        "id": Value("string"),
        "pair_id": Value("string"),
        "iteration": Value("int32"),
        "profiles": {"User 1": Sequence(Value("string")), "User 2": Sequence(Value("string"))},
        "messages": [{"speaker": Value("string"), "content": Value("string")}],
        "verdicts": [VERDICT],
        "votes": Value("int32"),
        "raw": Value("string"),
        "reason": Value("string"),
        "generator_model": Value("string"),
        "critic_model": Value("string"),
        "seed_source": Value("string"),
        "prompt": Value("string"),
    }
)


def to_dataset_dict(accepted: list[dict], rejected: list[dict], extra: dict) -> DatasetDict:
    """Both splits with one fixed schema (`extra` adds model and provenance columns)."""

    def split(rows: list[dict]) -> Dataset:
        if not rows:  # from_list cannot infer columns from nothing
            return Dataset.from_dict({name: [] for name in FEATURES}, features=FEATURES)
        return Dataset.from_list([{**r, **extra} for r in rows], features=FEATURES)

    return DatasetDict({"accepted": split(accepted), "rejected": split(rejected)})


def write_dataset(data: DatasetDict, card: str, out: Path, force: bool = False) -> None:
    """save_to_disk + JSONL + parquet + README.md into a temp dir, then rename onto `out`."""
    out = Path(out)
    if out.exists() and not force:
        raise ConvoforgeError(f"{out} exists; pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    hf_datasets.disable_progress_bars()
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        data.save_to_disk(str(tmp / "hf"))
        for split, ds in data.items():
            ds.to_json(str(tmp / f"{split}.jsonl"), lines=True)
            ds.to_parquet(str(tmp / f"{split}.parquet"))
        (tmp / "README.md").write_text(card, encoding="utf-8")
        if out.exists():  # --force: the old output goes only once the new one is complete
            old = out.with_name(f".{out.name}.old")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_dataset(path: Path) -> DatasetDict:
    """Load a dataset written by write_dataset (or any save_to_disk folder)."""
    path = Path(path)
    folder = path / "hf" if (path / "hf").is_dir() else path
    if not folder.is_dir():
        raise ConvoforgeError(f"no dataset at {path}")
    splits_file = folder / "dataset_dict.json"
    try:
        if not splits_file.is_file():
            return DatasetDict({"accepted": load_from_disk(str(folder))})
        splits = json.loads(splits_file.read_text())["splits"]
        return DatasetDict({name: _load_split(folder / name) for name in splits})
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise ConvoforgeError(f"{path} is not a saved Hugging Face dataset ({exc})") from exc


def _load_split(folder: Path) -> Dataset:
    """load_from_disk, except that datasets 5.2 writes no shard for an empty split: rebuild it."""
    if any(folder.glob("*.arrow")):
        return load_from_disk(str(folder))
    info = json.loads((folder / "dataset_info.json").read_text())
    features = Features.from_dict(info["features"])
    return Dataset.from_dict({name: [] for name in features}, features=features)
