"""CLI commands that train models: `convoforge train ...`."""

from __future__ import annotations

import json
import random
from pathlib import Path

import typer

from convoforge.app.cli import out, train_app
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
    out.print(json.dumps({"out": str(out_dir), "train_conversations": len(rows), **summary}))
