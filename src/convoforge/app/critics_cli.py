"""CLI commands that measure and train the critics: `eval critics`, `train critics`."""

from __future__ import annotations

import asyncio
import json
import random
import shlex
import sys
import time
from pathlib import Path

import typer

from convoforge.app.cli import critic_option_flag, critic_settings, eval_app, settings, train_app
from convoforge.errors import ConvoforgeError


@eval_app.command("critics")
def eval_critics(
    reference: Path = typer.Option(..., help="A Synthetic-Persona-Chat CSV; its held-out 40% gives the pairs."),
    critic: list[str] = typer.Option(
        None, "--critic", help="Critic to measure; repeat. Default: the built-in mixture."
    ),
    critic_option: list[str] = critic_option_flag(),
    critic_model: str | None = typer.Option(None, help="Model spec the LLM critics ask (default: --model)."),
    corruption: list[str] = typer.Option(None, "--corruption", help="Corruption to build; repeat. Default: all."),
    limit: int = typer.Option(100, min=2, help="Held-out conversations to corrupt (a seeded sample)."),
    constrained: bool = typer.Option(True, help="Grammar-constrained JSON on the local backend (off: parse only)."),
    seed: int = typer.Option(0, help="Seed of the sample and of the corruptions."),
) -> None:
    """Measure every critic as a judge: real held-out conversations against corrupted copies (one JSON line).

    Example: convoforge eval critics --reference spc/Synthetic-Persona-Chat_valid.csv --limit 60
    """
    from convoforge.critics import DEFAULT_CRITICS, load_critics
    from convoforge.critics.base import judging_once
    from convoforge.critics.corrupt import CORRUPTIONS
    from convoforge.critics.evaluate import evaluate_critics
    from convoforge.critics.faithfulness_data import split_of
    from convoforge.datasets.spc import read_spc
    from convoforge.llm import load_chat_model

    kinds = list(corruption or CORRUPTIONS)
    if unknown := [k for k in kinds if k not in CORRUPTIONS]:
        raise ConvoforgeError(f"unknown corruption {unknown[0]!r}; known: {', '.join(CORRUPTIONS)}")
    if not reference.is_file():
        raise ConvoforgeError(f"no reference CSV at {reference}")
    options = critic_settings(critic_option)
    critics = judging_once(load_critics(list(critic or DEFAULT_CRITICS), options), "eval critics")
    rows = [r for r in read_spc(reference) if split_of(r) == "test" and len(r["turns"]) >= 4]
    rows = random.Random(seed).sample(rows, min(limit, len(rows)))
    spec = critic_model or settings.model
    llm = load_chat_model(spec, base_url=settings.base_url)
    if not constrained:
        llm.supports_json_schema = False
    started = time.perf_counter()
    result = asyncio.run(evaluate_critics(critics, llm, rows, kinds, seed))
    result = {
        "reference": str(reference),
        "split": "held-out (hash of profiles, 40%)",
        "critic_model": llm.name,
        "constrained": bool(llm.supports_json_schema),
        **({"critic_options": options} if options else {}),
        **result,
        "seconds": round(time.perf_counter() - started, 1),
    }
    typer.echo(json.dumps(result))


@train_app.command("critics")
def train_critics_command(
    reference: Path = typer.Option(..., help="A Synthetic-Persona-Chat CSV; only its training part (60%) is used."),
    out_dir: Path = typer.Option(..., "--out", help="Folder for the heads, projection and their cards."),
    negatives: list[Path] = typer.Option(
        None, "--negatives", help="A `generate personas` dataset whose rejected candidates are negatives; repeat."
    ),
    limit: int | None = typer.Option(None, min=20, help="At most this many training conversations."),
    seed: int = typer.Option(0, help="Seed of the corruptions and the training."),
    faithfulness: bool = typer.Option(True, help="Also tune the faithfulness scorer (about 30 minutes on 2 cores)."),
    scorer_from: Path | None = typer.Option(
        None, help="Compress this fully tuned scorer (`train faithfulness --epochs 2`) instead of tuning one."
    ),
    force: bool = typer.Option(False, "--force", help="Replace the experts already in --out."),
) -> None:
    """Train the embedded model's experts: a head per quality dimension and the faithfulness projection.

    The shipped ones are rebuilt with --out src/convoforge/critics/models --force.

    Example: convoforge train critics --reference spc/Synthetic-Persona-Chat_valid.csv --out models/critics
    """
    from convoforge.training.critics import train_critics

    command = "convoforge " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if scorer_from is not None and not (scorer_from / "modules.json").is_file():
        raise ConvoforgeError(
            f"no sentence-transformers model at {scorer_from} (make one: convoforge train faithfulness)"
        )
    summary = train_critics(
        reference,
        out_dir,
        list(negatives or []),
        limit=limit,
        seed=seed,
        force=force,
        command=command,
        faithfulness=faithfulness,
        scorer_from=scorer_from,
    )
    typer.echo(json.dumps({"out": str(out_dir), **summary}))
