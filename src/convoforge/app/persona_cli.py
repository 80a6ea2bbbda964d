"""CLI commands of the persona generator: generate personas|samples, critics list, eval personas, export."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from convoforge.agents.persona.context import PersonaContext
from convoforge.app.cli import (
    app,
    critic_option_flag,
    critic_settings,
    critics_app,
    err,
    eval_app,
    generate_app,
    out,
    ray_option,
    settings,
)
from convoforge.critics import DEFAULT_CRITICS, list_critics
from convoforge.critics.plugins import critic_refs
from convoforge.errors import ConvoforgeError

STAGES = [
    "induce_queries",
    "bootstrap_queries",
    "bootstrap_personas",
    "build_profiles",
    "pair_profiles",
]


def default_generator(model: str) -> str:
    """The shipped generator (adapter and lexical prior) on the plain embedded model; any other model as it is."""
    from convoforge.llm.spec import DEFAULT_MODEL

    return f"{DEFAULT_MODEL}+adapter=persona-generator+bias=persona-generator" if model == DEFAULT_MODEL else model


def _cluster_cpus(address: str | None) -> int:
    """CPUs of the Ray cluster at `address` (starts or joins it)."""
    from convoforge.cluster import connect

    return max(1, int(connect(address).cluster_resources().get("CPU", 1)))


def tune_line(tuned: dict) -> str:
    """One `--tune-steps` tuning as the progress line says it."""
    if not tuned["rows"]:
        return "generator not tuned: no winner yet"
    loss = f"loss {tuned['first_loss']} -> {tuned['last_loss']}"
    return f"generator tuned on {tuned['rows']} winners ({tuned['steps']} steps, {loss})"


@generate_app.command("personas")
def generate_personas(
    out_dir: Path = typer.Option(..., "--out", help="Output folder (a Hugging Face dataset and its card)."),
    seed_file: Path | None = typer.Option(None, "--seed", help="SPC CSV or a text file of persona attributes."),
    iterations: int = typer.Option(3, min=1, help="Generator-Critic iterations (paper: 3)."),
    pairs: int = typer.Option(8, min=1, help="Persona pairs per iteration."),
    candidates: int = typer.Option(3, min=1, help="Candidate conversations per pair."),
    critic_model: str | None = typer.Option(None, help="Model spec for the critics (default: --model)."),
    generator_model: str | None = typer.Option(
        None,
        help="Model spec that writes the conversations (default: --model; on the embedded SmolLM2, convoforge's own "
        "tuned generator and its lexical prior, local:smollm2-135m+adapter=persona-generator+bias=persona-generator)."
        " Plain: --generator-model local:smollm2-135m.",
    ),
    critic: list[str] = typer.Option(
        [], "--critic", help="Critic name or module:Name; repeat. Default: the built-in mixture."
    ),
    add_critic: list[str] = typer.Option(
        [],
        "--add-critic",
        help="A critic to add to the default mixture (or to --critic's); repeat. E.g. realism: drops what reads "
        "least real to a discriminator learnt over the run from the seed examples and earlier iterations.",
    ),
    few_shot: int = typer.Option(5, min=0, help="Few-shot example conversations per prompt."),
    few_shot_nearest: int = typer.Option(
        0,
        min=0,
        help="Draw each pair's few-shot examples from the K (at least --few-shot) pool conversations whose "
        "profiles read nearest the pair's (MiniLM); 0: from the whole pool at random. With an SPC seed CSV the "
        "pool is then every clean train conversation (no loop, template text or placeholder), not the first 50.",
    ),
    winner_share: float | None = typer.Option(
        None,
        min=0.0,
        max=1.0,
        help="Chance that each few-shot example comes from earlier iterations' winners once there are any "
        "(1: winners only, as in the paper once its winners outnumber the seeds); default: the whole pool at "
        "random, seeds and winners alike.",
    ),
    tune_steps: int = typer.Option(
        0,
        min=0,
        help="After each iteration but the last, LoRA SFT steps (2 rows each) of the generator on every winner so "
        "far, in the prompt it was written in; the next iteration writes with the tuned generator, which is kept "
        "in OUT/tuned-generator. A local generator only; 0: off (the paper's loop: winners teach by example).",
    ),
    tune_lr: float = typer.Option(2e-4, min=0.0, help="Learning rate of --tune-steps."),
    min_turns: int = typer.Option(6, min=1, help="Fewest turns per user (paper: more than 5)."),
    max_turns: int = typer.Option(7, min=1, help="Most turns per user (paper: fewer than 8)."),
    max_tokens: int = typer.Option(600, min=16, help="Token budget of one generated conversation."),
    temperature: float = typer.Option(0.7, min=0.0, help="Sampling temperature of the conversations (0 = greedy)."),
    top_k: int = typer.Option(40, min=0, help="Top-k of the conversations' sampling (0 = off)."),
    frequency_penalty: float = typer.Option(
        0.0,
        min=-2.0,
        max=2.0,
        help="OpenAI's frequency penalty on the conversations: a token's logit minus this times its count so far.",
    ),
    presence_penalty: float = typer.Option(
        0.0, min=-2.0, max=2.0, help="OpenAI's presence penalty on the conversations: minus this once a token appeared."
    ),
    persona_target: int = typer.Option(16, min=0, help="New persona attributes to bootstrap."),
    query_steps: int = typer.Option(4, min=0, help="Query bootstrapping rounds (paper: 100)."),
    contradictions: bool | None = typer.Option(
        None,
        "--contradictions/--no-contradictions",
        help="Check new profile attributes for contradictions with the LLM. Default: on, except on the embedded "
        "SmolLM2, whose check answers 'contradicts' for every statement (benchmarks/structured_validity.py).",
    ),
    faithfulness_threshold: float | None = typer.Option(None, help="Score below which the faithfulness expert drops."),
    faithfulness_scorer: Path | None = typer.Option(
        None, help="A tuned faithfulness embedder (`convoforge train faithfulness`)."
    ),
    critic_option: list[str] = critic_option_flag(),
    random_seed: int = typer.Option(
        0, "--random-seed", help="Seed of the pairing, the examples and every sampled request."
    ),
    resume: bool = typer.Option(False, "--resume", help="Finish an interrupted run (settings come from the run)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out (only once the new one is complete)."),
    ray: str | None = ray_option("the persona pairs"),
    workers: int | None = typer.Option(None, min=1, help="Ray workers (default: one per CPU of the cluster)."),
    shard_size: int = typer.Option(
        0, min=0, help="Persona pairs per shard (0: one locally; with --ray, about two shards per worker)."
    ),
) -> None:
    """Generate persona dialogues with the Generator-Critic loop into a Hugging Face dataset.

    Example: convoforge generate personas --iterations 2 --pairs 4 --candidates 2 --out out/personas
    """
    from convoforge.agents.persona.run import NO_RAY_TUNING, RunConfig, run_persona_pipeline, stored_config
    from convoforge.llm.local import is_embedded_spec

    if tune_steps and ray:  # before Ray starts
        raise ConvoforgeError(NO_RAY_TUNING)
    if winner_share is not None and few_shot_nearest:
        raise ConvoforgeError("--winner-share draws examples at random; it does not combine with --few-shot-nearest")
    if min_turns > max_turns:
        raise ConvoforgeError(f"--min-turns {min_turns} is above --max-turns {max_turns}")
    context = PersonaContext(
        iterations=iterations,
        pairs=pairs,
        candidates=candidates,
        few_shot=few_shot,
        few_shot_nearest=few_shot_nearest,
        winner_share=winner_share,
        tune_steps=tune_steps,
        tune_lr=tune_lr,
        min_turns=min_turns,
        max_turns=max_turns,
        max_tokens=max_tokens,
        temperature=temperature,
        top_k=top_k,
        frequency_penalty=frequency_penalty,
        presence_penalty=presence_penalty,
        persona_target=persona_target,
        query_steps=query_steps,
        shard_size=shard_size or (max(1, -(-pairs // (2 * (workers or _cluster_cpus(ray))))) if ray else 1),
        check_contradictions=contradictions if contradictions is not None else not is_embedded_spec(settings.model),
        seed=random_seed,
    )
    refs = critic_refs(critic, add_critic)
    faithfulness = {"threshold": faithfulness_threshold} if faithfulness_threshold is not None else {}
    if faithfulness_scorer:
        faithfulness |= {"embedder": str(faithfulness_scorer), "unit": "text"}
    options = critic_settings(critic_option, faithfulness)
    cfg = RunConfig(
        out=str(out_dir),
        seed=str(seed_file) if seed_file else None,
        model=settings.model,
        critic_model=critic_model or settings.model,
        critics=refs,
        base_url=settings.base_url,
        context=context.as_dict(),
        critic_options=options,
        generator_model=generator_model or default_generator(settings.model),
        ray={"address": ray, "workers": workers} if ray else None,
    )
    planned = PersonaContext(**stored.context) if resume and (stored := stored_config(out_dir)) else context
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )  # shown once the input is loaded: bad input ends in its one-line error alone
    stage = progress.add_task("persona expansion", total=len(STAGES))
    conversations = progress.add_task("conversations", total=planned.iterations * planned.pairs * planned.candidates)
    judged = progress.add_task("critic passes", total=None)

    def on_update(node: str, update: dict) -> None:
        if node in STAGES:
            progress.advance(stage)
            detail = {k: len(v) for k, v in update.items() if isinstance(v, list) and k != "log"}
            progress.console.print(f"[green]✓[/] {node} {detail}")
        elif node == "conversations":
            progress.advance(conversations, len(update.get("candidates", [])))
            progress.advance(judged, len(update.get("verdicts", {})))
        elif node == "select":
            s = update["stats"][0]
            progress.console.print(
                f"[green]✓[/] iteration {s['iteration']}: {s['accepted']} accepted, {s['rejected']} rejected "
                f"{s['rejection_reasons']}"
            )
        elif node == "tune":
            progress.console.print(f"[green]✓[/] {tune_line(update['tuned'][0])}")

    try:
        pipeline = run_persona_pipeline(cfg, resume=resume, force=force, on_update=on_update, on_start=progress.start)
        summary = asyncio.run(pipeline)
    finally:
        progress.stop()
    table = Table(title=f"persona dialogues -> {summary['out']}")
    for col in ("iteration", "candidates", "accepted", "rejected", "few-shot pool", "rejections"):
        table.add_column(col)
    for s in summary["stats"]:
        table.add_row(
            str(s["iteration"]),
            str(s["candidates"]),
            str(s["accepted"]),
            str(s["rejected"]),
            str(s["few_shot_pool"]),
            json.dumps(s["rejection_reasons"]),
        )
    out.print(table)
    if summary.get("tuned_generator"):
        out.print(f"the generator of the last iteration (tuned on the winners): {summary['tuned_generator']}")
    out.print(
        f"{summary['accepted']} accepted, {summary['rejected']} rejected; {summary['new_attributes']} new attributes, "
        f"{summary['queries']} queries, {summary['profiles']} profiles; metrics {json.dumps(summary['metrics'])}"
    )


@generate_app.command("samples")
def generate_samples(
    data: Path = typer.Option(
        ...,
        help="A pairs or thumbs export (its --split's persona pairs are the prompts), or a Synthetic-Persona-Chat "
        "CSV (its train persona pairs in the generator's own few-shot prompt).",
    ),
    out_dir: Path = typer.Option(..., "--out", help="Output folder (a persona dataset: accepted and rejected)."),
    samples: int = typer.Option(4, min=2, help="Conversations per persona pair (a winner needs losers)."),
    split: str = typer.Option("train", help="Which split's persona pairs to sample (train keeps test unseen)."),
    pairs: int | None = typer.Option(None, min=1, help="At most this many persona pairs (a seeded sample)."),
    critic_model: str | None = typer.Option(None, help="Model spec for the critics (default: --model)."),
    critic: list[str] = typer.Option(None, help="Critic name or module:Name; repeat. Default: the built-in mixture."),
    critic_option: list[str] = critic_option_flag(),
    min_turns: int = typer.Option(3, min=1, help="Fewest turns per user for a candidate to parse."),
    max_tokens: int = typer.Option(320, min=16, help="Token budget of one generated conversation."),
    random_seed: int = typer.Option(
        0, "--random-seed", help="Seed of the pair sample and of each pair's generations (a seed per pair)."
    ),
    real_chosen: bool = typer.Option(
        False,
        "--real-chosen",
        help="With an SPC CSV: no critics; write DPO pairs with the real conversation chosen over each sample (SPIN).",
    ),
    drop_leaky: bool = typer.Option(
        False, "--drop-leaky", help="With an SPC CSV: no conversation with placeholders as pair, example or chosen."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out (only once the new one is complete)."),
) -> None:
    """Sample the --model policy on known persona pairs and judge each conversation with the critics.

    Its winners and losers are on-policy preference pairs: `export --format pairs`, then `train dpo` on top
    of the same policy (`--base local:NAME+adapter=DIR`) is one round of iterative DPO.

    Example: convoforge --model local:smollm2-135m+adapter=models/sft generate samples --data out/pairs
    --samples 6 --out out/samples. With an SPC CSV and the shipped generator, one such round improves the shipped
    generator in the prompt `generate personas` uses. With --real-chosen, --out is a DPO export (real over own).
    """
    from convoforge.training.sampling import real_pairs, sample_run

    if real_chosen:
        ctx = PersonaContext(min_turns=min_turns, max_tokens=max_tokens)
        found = real_pairs(
            data, settings.model, out_dir, samples, pairs, ctx, random_seed, force, settings.base_url, drop_leaky
        )
        typer.echo(json.dumps(found))
        return
    summary = sample_run(
        data,
        settings.model,
        out_dir,
        list(critic or DEFAULT_CRITICS),
        critic_model or settings.model,
        samples=samples,
        split=split,
        limit=pairs,
        min_turns=min_turns,
        max_tokens=max_tokens,
        seed=random_seed,
        force=force,
        base_url=settings.base_url,
        drop_leaky=drop_leaky,
        critic_options=critic_settings(critic_option),
    )
    typer.echo(json.dumps(summary))


@critics_app.command("list")
def critics_list() -> None:
    """List every critic: built-in ones and those installed under `convoforge.critics` entry points.

    Example: convoforge critics list
    """
    table = Table(title="critics")
    for col in ("name", "role", "source", "description", "settings (--critic-option NAME.SETTING=VALUE)"):
        table.add_column(col)
    for row in list_critics():
        table.add_row(row.name, row.role, row.source, row.description, row.settings)
    out.print(table)


@eval_app.command("personas")
def eval_personas(
    data: Path = typer.Option(..., help="A dataset folder written by `convoforge generate personas`."),
    reference: Path | None = typer.Option(None, help="A Synthetic-Persona-Chat CSV to compare with (adds AUCs)."),
    limit: int = typer.Option(400, min=2, help="Held-out reference conversations to use (a random sample)."),
    scorer: Path | None = typer.Option(None, help="A tuned faithfulness embedder (`convoforge train faithfulness`)."),
    untuned: bool = typer.Option(
        False, "--untuned", help="Score with untuned MiniLM per sentence, not the shipped LoRA."
    ),
    seed: int = typer.Option(0, help="Sampling seed."),
    versus: Path | None = typer.Option(
        None, help="Another run on the same seeds and settings: its measures and a paired test per persona pair."
    ),
) -> None:
    """Print JSON metrics of a generated dataset (and of a reference, with faithfulness AUCs).

    Example: convoforge eval personas --data out/personas --reference spc/Synthetic-Persona-Chat_valid.csv
    """
    from convoforge.agents.persona.evaluate import evaluate
    from convoforge.llm.embeddings import EMBEDDED_EMBEDDER, load_embedder

    dataset = persona_run(data)
    rows = dataset["accepted"]
    from convoforge.critics.faithfulness import FaithfulnessExpert

    expert = FaithfulnessExpert(embedder=str(scorer) if scorer else EMBEDDED_EMBEDDER, tuned=not untuned)
    embedder, unit = load_embedder(expert.spec), expert.unit
    report, own = evaluate(embedder, rows, with_aucs=False, unit=unit) if rows else ({"conversations": 0}, [])
    result: dict = {
        "data": str(data),
        "generated": report,
        "rejected": len(dataset["rejected"]),
    }
    result["faithfulness_per_conversation"] = {r["id"]: round(s, 4) for r, s in zip(rows, own, strict=True)}
    ref_rows = None
    if reference:
        ref_rows = reference_rows(reference, limit, seed)
        result["reference"], _ = evaluate(embedder, ref_rows, with_aucs=True, seed=seed, unit=unit)
        result["reference"]["split"] = "held-out (hash of profiles, 40%)"
        result["scorer"] = str(scorer) if scorer else expert.description
    from convoforge.agents.persona.evaluate import quality_report
    from convoforge.datasets.card import DISCRIMINATOR_NOTE

    quality = quality_report(load_embedder(EMBEDDED_EMBEDDER), rows, ref_rows, seed)
    result["generated"] |= quality["generated"]
    result["candidates"] = candidate_quality(dataset, ref_rows, seed)
    if ref_rows:
        result["reference"] |= quality["reference"]
        result["discriminator"] = DISCRIMINATOR_NOTE
    result["per_iteration"] = quality["per_iteration"]
    if ref_rows:  # the first and the last iteration at the same count: whether iterations help
        from convoforge.agents.persona.evaluate import iteration_trends

        every = candidate_rows(dataset)
        result["iterations"] = iteration_trends(load_embedder(EMBEDDED_EMBEDDER), ref_rows, rows, every, seed)
    if versus:
        result["versus"] = versus_report(dataset, versus, ref_rows, seed)
    typer.echo(json.dumps(result))


@eval_app.command("seeds")
def eval_seeds(
    data: list[Path] = typer.Option(..., help="A `generate personas` run; repeat, one a random seed."),
    versus: list[Path] = typer.Option(..., help="The other generator's run of the same seed, in --data's order."),
    reference: Path = typer.Option(..., help="The Synthetic-Persona-Chat CSV the runs were seeded from."),
    limit: int = typer.Option(400, min=2, help="Held-out reference conversations to use (a random sample)."),
    margin: float | None = typer.Option(
        None, help="A target difference (say -0.10): runs that reach it, and the p of a mean beyond it."
    ),
    seed: int = typer.Option(0, help="Sampling seed of the reference sample and the discriminator's draws."),
) -> None:
    """Two generators over several random seeds, paired by seed: discriminator, acceptance and iteration trend.

    Example: convoforge eval seeds --data F0 --versus B0 --data F1 --versus B1 --reference SPC.csv --margin -0.10
    """
    from convoforge.agents.persona.evaluate import (
        iteration_trends,
        matched_discriminator,
        over_runs,
        pair_outcomes,
        paired_comparison,
        shared_trend_over_runs,
        trend_over_runs,
    )
    from convoforge.llm.embeddings import load_embedder

    if len(data) != len(versus):
        raise ConvoforgeError(f"{len(data)} --data runs but {len(versus)} --versus runs; give one of each a seed")
    runs = [persona_run(path) for path in (*data, *versus)]  # every folder read first: a bad one fails at once
    ref_rows, embedder, per_run = reference_rows(reference, limit, seed), load_embedder(), []
    for path, other, mine, theirs in zip(data, versus, runs[: len(data)], runs[len(data) :], strict=True):
        every = candidate_rows(mine)  # the discriminator and the every-candidate trend read the same rows
        matched = matched_discriminator(embedder, ref_rows, every, candidate_rows(theirs), seed=seed)
        paired = paired_comparison(*(pair_outcomes(r["accepted"], r["rejected"]) for r in (mine, theirs)))
        accepts = [paired["acceptance"], paired["acceptance_other"]]
        per_run.append({"data": str(path), "versus": str(other), "candidates_matched": matched, "paired": paired})
        per_run[-1]["acceptance_difference"] = None if None in accepts else round(accepts[0] - accepts[1], 4)
        trends = iteration_trends(embedder, ref_rows, mine["accepted"], every, seed)
        per_run[-1]["iterations"] = trends["winners"]
        per_run[-1]["iterations_every_candidate"] = trends.get("every_candidate", {"reason": "no candidate has turns"})
        per_run[-1]["iterations_shared"] = trends["winners_shared"]
        per_run[-1]["iterations_shared_words"] = trends["winners_shared_words"]
    discriminator = [r["candidates_matched"].get("difference") for r in per_run]
    acceptance = [r["acceptance_difference"] for r in per_run]
    result = {
        "runs": per_run,
        "discriminator": over_runs([d for d in discriminator if d is not None], margin),
        "acceptance": over_runs([a for a in acceptance if a is not None]),
        # --data's winners (and every candidate): does the last iteration read more real than the first?
        "iterations": trend_over_runs([r["iterations"] for r in per_run]),
        "iterations_every_candidate": trend_over_runs([r["iterations_every_candidate"] for r in per_run]),
        "iterations_shared": shared_trend_over_runs([r["iterations_shared"] for r in per_run], seed=seed),
        "iterations_shared_words": shared_trend_over_runs([r["iterations_shared_words"] for r in per_run], seed=seed),
        "unit": "one random seed: both generators' runs of it, every candidate at the same count (5 draws)",
    }
    typer.echo(json.dumps(result))


@eval_app.command("iterations")
def eval_iterations(
    data: list[Path] = typer.Option(..., help="A `generate personas` run of two iterations or more; repeat."),
    reference: Path = typer.Option(..., help="The Synthetic-Persona-Chat CSV the runs were seeded from."),
    limit: int = typer.Option(400, min=2, help="Held-out reference conversations to use (a random sample)."),
    seed: int = typer.Option(0, help="Sampling seed of the reference sample, the folds and the permutations."),
) -> None:
    """Whether the last iteration's winners read more real than the first's, per run and pooled over runs.

    Example: convoforge eval iterations --data R17 --data R18 --data R19 --reference SPC.csv
    """
    from convoforge.agents.persona.evaluate import iteration_trends, shared_trend_over_runs, trend_over_runs
    from convoforge.llm.embeddings import load_embedder

    runs = [persona_run(path) for path in data]  # every folder read first: a bad one fails at once
    ref_rows, embedder, per_run = reference_rows(reference, limit, seed), load_embedder(), []
    for path, run in zip(data, runs, strict=True):
        trends = iteration_trends(embedder, ref_rows, run["accepted"], candidate_rows(run), seed)
        per_run.append({"data": str(path), **trends})
    result = {
        "runs": per_run,
        # one classifier a run over every candidate, each winner scored out of fold; pooled by permutation
        "shared": shared_trend_over_runs([r["winners_shared"] for r in per_run], seed=seed),
        # the same on word 1-2 grams: a second judge, on features the realism critic does not learn
        "shared_words": shared_trend_over_runs([r["winners_shared_words"] for r in per_run], seed=seed),
        # a classifier an iteration on its winners alone (the smaller count, 5 draws), a run the unit
        "winners": trend_over_runs([r["winners"] for r in per_run]),
        "every_candidate": trend_over_runs([r.get("every_candidate", {}) for r in per_run]),
    }
    typer.echo(json.dumps(result))


def candidate_quality(dataset: dict, reference: list[dict] | None, seed: int) -> dict:
    """The same measures over every candidate with turns (accepted or not), overall and per iteration."""
    from convoforge.agents.persona.evaluate import candidates_report
    from convoforge.llm.embeddings import load_embedder

    rows = candidate_rows(dataset)
    return candidates_report(load_embedder(), rows, reference, seed) if rows else {"conversations": 0}


def candidate_rows(dataset: dict) -> list[dict]:
    """Every candidate of a persona run with turns, accepted or not."""
    return [dict(r) for name in ("accepted", "rejected") for r in dataset[name] if r["messages"]]


def versus_report(dataset: dict, other: Path, reference: list[dict] | None, seed: int) -> dict:
    """The other run's critic-independent measures and the paired test, this run against it."""
    from convoforge.agents.persona.evaluate import (
        matched_discriminator,
        pair_outcomes,
        paired_comparison,
        quality_report,
    )
    from convoforge.llm.embeddings import load_embedder

    theirs = persona_run(other)
    quality = quality_report(load_embedder(), theirs["accepted"], reference, seed)
    mine = pair_outcomes([dict(r) for r in dataset["accepted"]], [dict(r) for r in dataset["rejected"]])
    report = {
        "data": str(other),
        "generated": quality["generated"],
        "candidates": candidate_quality(theirs, reference, seed),
        "per_iteration": quality["per_iteration"],
        "paired": paired_comparison(mine, pair_outcomes(theirs["accepted"], theirs["rejected"])),
    }
    if reference:  # every candidate of both runs at the same count: the discriminators compare
        both = candidate_rows(dataset), candidate_rows(theirs)
        report["candidates_matched"] = matched_discriminator(load_embedder(), reference, *both, seed=seed)
    return report


def persona_run(path: Path) -> dict[str, list[dict]]:
    """A `generate personas` dataset's splits as rows; a folder without accepted and rejected is refused."""
    from convoforge.datasets.records import read_dataset

    found = read_dataset(path)
    if "accepted" not in found or "rejected" not in found:
        raise ConvoforgeError(f"{path} is not a persona dataset (needs splits accepted and rejected)")
    return {name: [dict(r) for r in part] for name, part in found.items()}


def reference_rows(reference: Path, limit: int, seed: int) -> list[dict]:
    """A seeded sample of the held-out part of a Synthetic-Persona-Chat CSV, as dataset rows."""
    from convoforge.datasets.spc import held_out_rows

    if not reference.is_file():
        raise ConvoforgeError(f"no reference CSV at {reference}")
    return held_out_rows(reference, limit, seed)


@app.command("export")
def export_command(
    data: list[Path] = typer.Option(
        ...,
        help="A `generate personas` dataset (an SPC CSV for sft, `simulate` sessions for retrieval, MovieLens "
        "ratings.csv for profile); repeat to combine runs.",
    ),
    fmt: str = typer.Option(..., "--format", help="sft, pairs, thumbs, retrieval or profile."),
    out_dir: Path = typer.Option(..., "--out", help="Output folder (HF dataset + card)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out."),
    own_prompt: bool = typer.Option(
        False,
        "--own-prompt",
        help="sft, pairs, thumbs: the prompt each conversation was written in (the generator's few-shot prompt, "
        "to train the generator itself) instead of the short generic task.",
    ),
) -> None:
    """Turn generated data into a training set in TRL's formats, with a dataset card.

    Example: convoforge export --data out/personas --data out/personas-2 --format pairs --out out/pairs
    """
    from convoforge.datasets.export import export

    typer.echo(json.dumps(export(data, fmt, out_dir, force, own_prompt)))
