"""Persona-dialogue records as a Hugging Face DatasetDict, written atomically with a card."""

from __future__ import annotations

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
    }
)


def to_dataset_dict(accepted: list[dict], rejected: list[dict], extra: dict) -> DatasetDict:
    """Both splits with one fixed schema (`extra` adds model and provenance columns)."""
    return DatasetDict(
        {
            "accepted": Dataset.from_list([{**r, **extra} for r in accepted], features=FEATURES),
            "rejected": Dataset.from_list([{**r, **extra} for r in rejected], features=FEATURES),
        }
    )


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
    try:
        data = load_from_disk(str(folder))
    except FileNotFoundError as exc:
        raise ConvoforgeError(f"{path} is not a saved Hugging Face dataset") from exc
    if not isinstance(data, DatasetDict):
        data = DatasetDict({"accepted": data})
    return data
