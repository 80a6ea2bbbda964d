"""Tuning the generator on its own winners between iterations (`generate personas --tune-steps N`).

The paper's loop teaches its generator only through the few-shot pool; a 135M generator learns little from one
example in its prompt. Here the critic's winners so far also train it: LoRA SFT (TRL, `lora.train`) on each
winner in the exact prompt it was written in, on top of the run's own generator, so the next iteration writes
with a generator fitted to what the critic kept (rejection-sampling fine-tuning).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

from convoforge.datasets.export import record_prompt, transcript
from convoforge.errors import ConvoforgeError
from convoforge.llm.spec import parse_spec


def winner_rows(accepted: list[dict]) -> list[dict]:
    """SFT rows: each winner's own prompt, then its conversation as the assistant's answer."""
    return [
        {
            "id": r["id"],
            "messages": [*record_prompt(r, own=True), {"role": "assistant", "content": transcript(r["messages"])}],
        }
        for r in accepted
        if r.get("prompt") and r["messages"]
    ]


def release_memory() -> None:
    """Hand the trainer's freed memory back to the system (glibc keeps it otherwise), so a long run stays small."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def tunable(spec: str) -> tuple[str, str | None, str | None]:
    """A local generator spec's weights, adapter and bias; a one-line error for a generator LoRA cannot tune."""
    backend, ref, options = parse_spec(spec)
    if backend != "local":
        raise ConvoforgeError(f"--tune-steps tunes a local generator (local:...), not {spec!r}")
    return ref, options.get("adapter"), options.get("bias")


def tune_on_winners(
    spec: str,
    accepted: list[dict],
    out: Path,
    steps: int,
    lr: float,
    seed: int,
    max_length: int = 1024,
    accumulation: int = 2,
) -> tuple[str, dict]:
    """LoRA SFT of the generator `spec` on `accepted`; the tuned generator's spec (same bias) and what was done.

    A step's two rows pass one at a time (`accumulation`): both at once took a run past 10 GB.
    """
    import datasets
    from datasets import Dataset, DatasetDict

    from convoforge.training.lora import LoraSettings, train

    ref, adapter, bias = tunable(spec)
    rows = winner_rows(accepted)
    if not rows:
        raise ConvoforgeError("no winner with its prompt to tune the generator on")
    datasets.disable_progress_bars()  # the run prints its own progress
    data = out.parent / f"{out.name}.data"
    shutil.rmtree(data, ignore_errors=True)  # a tune cut short by a crash starts again on resume
    DatasetDict({"train": Dataset.from_list(rows)}).save_to_disk(str(data))
    base = f"local:{ref}" + (f"+adapter={adapter}" if adapter else "")
    settings = LoraSettings(base=base, steps=steps, lr=lr, seed=seed, max_length=max_length, accumulation=accumulation)
    try:
        summary = train("sft", data, out, settings, force=True, quiet=True)
    finally:
        release_memory()
    tuned = f"local:{ref}+adapter={out.resolve()}" + (f"+bias={bias}" if bias else "")
    info = {
        "rows": len(rows),
        "steps": summary["steps"],
        "lr": lr,
        "first_loss": summary["first_loss"],
        "last_loss": summary["last_loss"],
    }
    (out / "winners.json").write_text(json.dumps([r["id"] for r in rows]))
    return tuned, info
