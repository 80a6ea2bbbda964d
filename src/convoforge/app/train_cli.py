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


LORA_COMMANDS = {
    "sft": ("sft", 2e-4, "LoRA SFT (TRL SFTTrainer + PEFT) on accepted conversations; completion-only loss."),
    "reward": ("pairs", 2e-4, "LoRA reward model (TRL RewardTrainer + PEFT) on critic preference pairs (PERL)."),
    "dpo": ("pairs", 5e-5, "LoRA DPO (TRL DPOTrainer + PEFT) on critic winners vs losers."),
}


def _lora_command(kind: str, fmt: str, default_lr: float, summary: str) -> None:
    """Register `convoforge train KIND`: the three LoRA trainers share their options."""

    def command(
        data: Path = typer.Option(..., help=f"An `export --format {fmt}` folder."),
        out_dir: Path = typer.Option(..., "--out", help="Where to save the LoRA adapter."),
        base: str = typer.Option("local:smollm2-135m", help="Local base model spec."),
        steps: int = typer.Option(50, min=1, help="Optimizer steps."),
        lr: float = typer.Option(default_lr, help="Learning rate."),
        lora_r: int = typer.Option(16, min=1, help="LoRA rank."),
        lora_alpha: int = typer.Option(32, min=1, help="LoRA alpha."),
        batch_size: int = typer.Option(2, min=1, help="Rows per step."),
        resume: bool = typer.Option(False, "--resume", help="Continue from the run's last checkpoint."),
        force: bool = typer.Option(False, "--force", help="Replace an existing --out."),
    ) -> None:
        from convoforge.training.lora import LoraSettings, train

        settings = LoraSettings(
            base=base, steps=steps, lr=lr, lora_r=lora_r, lora_alpha=lora_alpha, batch_size=batch_size
        )
        result = train(kind, data, out_dir, settings, force=force or resume, resume=resume)
        typer.echo(json.dumps({k: v for k, v in result.items() if k != "losses"}))

    command.__doc__ = (
        f"{summary}\n\n    Example: convoforge train {kind} --data out/{fmt} --out models/{kind} --steps 50\n    "
    )
    train_app.command(kind)(command)


for _kind, (_fmt, _lr, _summary) in LORA_COMMANDS.items():
    _lora_command(_kind, _fmt, _lr, _summary)
