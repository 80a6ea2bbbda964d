"""CLI commands that train models: `convoforge train ...`."""

from __future__ import annotations

import json
import random
from pathlib import Path

import typer

from convoforge.app.cli import train_app
from convoforge.errors import ConvoforgeError


@train_app.command("faithfulness")
def train_faithfulness(
    data: Path = typer.Option(..., help="A Synthetic-Persona-Chat CSV (its held-out 40% is never used)."),
    out_dir: Path = typer.Option(..., "--out", help="Where to save the tuned embedder."),
    epochs: float = typer.Option(1.0, min=0.01, help="Passes over the training pairs."),
    steps: int = typer.Option(-1, help="Stop after this many steps (-1: whole epochs)."),
    batch_size: int = typer.Option(32, min=2, help="Pairs per batch (the in-batch negatives)."),
    lr: float = typer.Option(5e-5, help="Learning rate."),
    symmetric: bool = typer.Option(True, help="Also rank attributes for each text (the attribute-level task)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out."),
) -> None:
    """Tune MiniLM so persona attributes land near what their speaker says (in-batch negatives).

    Example: convoforge train faithfulness --data spc/Synthetic-Persona-Chat_valid.csv --out models/faith
    """
    from convoforge.agents.persona.seeds import read_spc
    from convoforge.critics.faithfulness_data import attribute_pairs, split_of
    from convoforge.training.embedder import tune_embedder

    if not data.is_file():
        raise ConvoforgeError(f"no CSV at {data}")
    rows = [r for r in read_spc(data) if split_of(r) == "train"]
    pairs = attribute_pairs(rows)
    random.Random(0).shuffle(pairs)
    summary = tune_embedder(
        pairs, out_dir, epochs=epochs, max_steps=steps, batch_size=batch_size, lr=lr, symmetric=symmetric, force=force
    )
    typer.echo(json.dumps({"out": str(out_dir), "train_conversations": len(rows), **summary}))


@train_app.command("sft")
def train_sft(
    data: Path = typer.Option(..., help="An `export --format sft` folder (TRL messages)."),
    out_dir: Path = typer.Option(..., "--out", help="Where to save the LoRA adapter."),
    base: str = typer.Option("local:smollm2-135m", help="Local base model spec."),
    steps: int = typer.Option(50, min=1, help="Optimizer steps."),
    lr: float = typer.Option(2e-4, help="Learning rate."),
    lora_r: int = typer.Option(16, min=1, help="LoRA rank."),
    lora_alpha: int = typer.Option(32, min=1, help="LoRA alpha."),
    batch_size: int = typer.Option(2, min=1, help="Rows per step."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run's last checkpoint."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out."),
) -> None:
    """LoRA SFT (TRL SFTTrainer + PEFT) on accepted conversations; completion-only loss.

    Example: convoforge train sft --data out/sft --out models/sft --steps 50
    """
    _lora("sft", data, out_dir, base, steps, lr, lora_r, lora_alpha, batch_size, resume, force)


@train_app.command("reward")
def train_reward(
    data: Path = typer.Option(..., help="An `export --format pairs` folder (prompt/chosen/rejected)."),
    out_dir: Path = typer.Option(..., "--out", help="Where to save the LoRA reward model."),
    base: str = typer.Option("local:smollm2-135m", help="Local base model spec."),
    steps: int = typer.Option(50, min=1, help="Optimizer steps."),
    lr: float = typer.Option(2e-4, help="Learning rate."),
    lora_r: int = typer.Option(16, min=1, help="LoRA rank."),
    lora_alpha: int = typer.Option(32, min=1, help="LoRA alpha."),
    batch_size: int = typer.Option(2, min=1, help="Pairs per step."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run's last checkpoint."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out."),
) -> None:
    """LoRA reward model (TRL RewardTrainer + PEFT) on critic preference pairs (PERL).

    Example: convoforge train reward --data out/pairs --out models/rm --steps 50
    """
    _lora("reward", data, out_dir, base, steps, lr, lora_r, lora_alpha, batch_size, resume, force)


@train_app.command("dpo")
def train_dpo(
    data: Path = typer.Option(..., help="An `export --format pairs` folder (prompt/chosen/rejected)."),
    out_dir: Path = typer.Option(..., "--out", help="Where to save the LoRA adapter."),
    base: str = typer.Option("local:smollm2-135m", help="Local base model spec."),
    steps: int = typer.Option(50, min=1, help="Optimizer steps."),
    lr: float = typer.Option(5e-5, help="Learning rate."),
    lora_r: int = typer.Option(16, min=1, help="LoRA rank."),
    lora_alpha: int = typer.Option(32, min=1, help="LoRA alpha."),
    batch_size: int = typer.Option(2, min=1, help="Pairs per step."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run's last checkpoint."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out."),
) -> None:
    """LoRA DPO (TRL DPOTrainer + PEFT) on critic winners vs losers.

    Example: convoforge train dpo --data out/pairs --out models/dpo --steps 50
    """
    _lora("dpo", data, out_dir, base, steps, lr, lora_r, lora_alpha, batch_size, resume, force)


def _lora(
    kind: str,
    data: Path,
    out_dir: Path,
    base: str,
    steps: int,
    lr: float,
    lora_r: int,
    lora_alpha: int,
    batch_size: int,
    resume: bool,
    force: bool,
) -> None:
    from convoforge.training.lora import LoraSettings, train

    settings = LoraSettings(base=base, steps=steps, lr=lr, lora_r=lora_r, lora_alpha=lora_alpha, batch_size=batch_size)
    summary = train(kind, data, out_dir, settings, force=force or resume, resume=resume)
    typer.echo(json.dumps({k: v for k, v in summary.items() if k != "losses"}))
