"""Running the persona pipeline for real: durable (SQLite checkpoints), resumable, atomic output."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from convoforge.agents.persona.context import PersonaContext
from convoforge.agents.persona.distributed import failure_counts, ray_runner
from convoforge.agents.persona.graph import Tuner, build_graph
from convoforge.agents.persona.seeds import load_seeds
from convoforge.critics import load_critics
from convoforge.datasets.card import persona_card
from convoforge.datasets.metrics import conversation_stats
from convoforge.datasets.records import to_dataset_dict, write_dataset
from convoforge.errors import ConvoforgeError
from convoforge.llm import keyed_seed, load_chat_model, parse_spec

THREAD = {"configurable": {"thread_id": "persona-run"}}
KEPT_NOTE = (
    "tuned-generator/ in this folder: the generator that wrote the last iteration "
    "(--generator-model local:REF+adapter=THIS_FOLDER/tuned-generator, with the run's +bias)"
)
NO_RAY_TUNING = "--tune-steps tunes the generator in this process; it does not run with --ray"


@dataclass
class RunConfig:
    """Everything needed to start or resume a run (stored as run.json in the work dir)."""

    out: str
    seed: str | None
    model: str
    critic_model: str
    critics: list[str]
    base_url: str | None = None
    force: bool = False
    context: dict = field(default_factory=dict)
    critic_options: dict = field(default_factory=dict)
    generator_model: str | None = None
    ray: dict | None = None  # {"address": ..., "workers": ...}: shards of pairs run on Ray workers

    @property
    def generator(self) -> str:
        """The model spec that writes the conversations (default: the expansion model)."""
        return self.generator_model or self.model


def work_dir(out: Path) -> Path:
    """Where checkpoints of an unfinished run live, beside the output folder."""
    return out.parent / f".{out.name}.convoforge-run"


def stored_config(out: Path) -> RunConfig | None:
    """The configuration of an unfinished run for `out`, if there is one."""
    path = work_dir(Path(out)) / "run.json"
    return RunConfig(**json.loads(path.read_text())) if path.is_file() else None


def prepare(cfg: RunConfig, resume: bool, force: bool) -> tuple[RunConfig, Path]:
    """Check the output and work folders; on resume, reload the stored configuration."""
    out = Path(cfg.out)
    work = work_dir(out)
    if resume:
        stored = stored_config(out)
        if stored is None:
            raise ConvoforgeError(f"nothing to resume: no unfinished run for {out}")
        return stored, work
    cfg.force = force
    if out.exists() and not force:
        raise ConvoforgeError(f"{out} exists; pass --force to replace it (it is kept until the new one is done)")
    if work.exists():
        raise ConvoforgeError(f"an unfinished run for {out} exists at {work}; pass --resume, or delete that folder")
    work.mkdir(parents=True)
    (work / "run.json").write_text(json.dumps(asdict(cfg), indent=2))
    return cfg, work


async def run_persona_pipeline(
    cfg: RunConfig,
    resume: bool = False,
    force: bool = False,
    on_update: Callable[[str, dict], None] | None = None,
    on_start: Callable[[], None] | None = None,
) -> dict:
    """Run (or resume) the graph to the end, write the dataset, and return a summary.

    `on_start` is called once the input is loaded and checked, before the first node runs.
    """
    if resume:
        cfg, work = prepare(cfg, resume, force)
    # everything that can fail on bad input is loaded before a work folder exists
    # nearest few-shot examples need a wide pool to be near: every train conversation of an SPC seed file
    seeds = load_seeds(cfg.seed, None if cfg.context.get("few_shot_nearest") else 50)
    critics = load_critics(cfg.critics, cfg.critic_options)
    tuning = cfg.context.get("tune_steps", 0) > 0
    if tuning:
        from convoforge.training.winners import tunable

        if cfg.ray is not None:
            raise ConvoforgeError(NO_RAY_TUNING)
        tunable(cfg.generator)
    llm = load_chat_model(cfg.model, base_url=cfg.base_url)
    if cfg.ray is None:
        critic_llm = llm if cfg.critic_model == cfg.model else load_chat_model(cfg.critic_model, base_url=cfg.base_url)
        generator_llm = llm if cfg.generator == cfg.model else load_chat_model(cfg.generator, base_url=cfg.base_url)
        runner, pool, remote_failures = None, None, Counter()
    else:  # generator and critics run in the Ray workers; this process runs expansion and selection
        critic_llm = generator_llm = llm
        runner, pool, remote_failures = ray_runner(asdict(cfg), cfg.ray)
    if not resume:
        cfg, work = prepare(cfg, resume, force)
    ctx = PersonaContext(**cfg.context)
    if on_start:
        on_start()
    try:
        async with AsyncSqliteSaver.from_conn_string(str(work / "checkpoints.sqlite")) as saver:
            graph = build_graph(
                llm,
                critics,
                critic_llm,
                checkpointer=saver,
                generator_llm=generator_llm,
                shard_runner=runner,
                tuner=winners_tuner(cfg.generator, work) if tuning else None,
            )
            snapshot = await graph.aget_state(THREAD)
            started = bool(snapshot.values)
            if resume and started and not snapshot.next:
                inputs: Any = None  # finished before the output was written
            elif started:
                inputs = None
            else:
                inputs = {"seed_attributes": seeds.attributes, "seed_examples": seeds.examples}
            if inputs is not None or snapshot.next:
                stream = graph.astream(inputs, THREAD, context=ctx, stream_mode="updates", durability="sync")
                async for update in stream:
                    for node, value in update.items():
                        if on_update:
                            on_update(node, value or {})
            state = (await graph.aget_state(THREAD)).values
    finally:
        if pool is not None:
            pool.close()
    failures = dict(failure_counts([llm, critic_llm, generator_llm]) + remote_failures)
    summary = _write(cfg, ctx, seeds.source, critics, state, force=cfg.force, failures=failures)
    if state.get("generator"):
        summary["tuned_generator"] = str(keep_tuned(state["generator"], Path(cfg.out)))
    shutil.rmtree(work, ignore_errors=True)
    return summary


def keep_tuned(spec: str, out: Path) -> Path:
    """Copy the adapter of a tuned generator's spec (in the run's work folder) into the output, beside its data."""
    adapter = Path(parse_spec(spec)[2]["adapter"])
    kept = out / "tuned-generator"
    shutil.copytree(adapter, kept, dirs_exist_ok=True)
    return kept


def winners_tuner(spec: str, work: Path) -> Tuner:
    """Between iterations: LoRA SFT of the run's generator on every winner so far (`training.winners`)."""

    async def tune(accepted: list[dict], iteration: int, ctx: PersonaContext) -> tuple[str, dict]:
        from convoforge.training.winners import tune_on_winners, winner_rows

        if not winner_rows(accepted):  # nothing kept yet: the next iteration writes with the same generator
            return "", {"rows": 0, "steps": 0}
        out = work / f"tuned-after-{iteration}"
        seed = keyed_seed(ctx.seed, "tune", iteration)
        return await asyncio.to_thread(tune_on_winners, spec, accepted, out, ctx.tune_steps, ctx.tune_lr, seed)

    return tune


def run_quality(cfg: RunConfig, accepted: list[dict], candidates: list[dict] | None = None, limit: int = 200) -> dict:
    """The card's critic-independent measures; against the seed CSV's held-out part when the seeds are SPC.

    With `candidates` (every conversation written, accepted or not) the same measures of those, overall and per
    iteration: whether the generator's output improves over iterations, not only the critic's choice of it.
    """
    from convoforge.agents.persona.evaluate import candidates_report, iteration_trends, quality_report
    from convoforge.datasets.spc import held_out_rows
    from convoforge.llm.embeddings import load_embedder

    reference = None
    if cfg.seed and cfg.seed.lower().endswith(".csv"):
        reference = held_out_rows(Path(cfg.seed), limit, 0)
    quality = quality_report(load_embedder(), accepted, reference)
    if candidates:
        quality["candidates"] = candidates_report(load_embedder(), candidates, reference)
    if reference:
        quality["reference_source"] = f"held-out part of {Path(cfg.seed).name}, {len(reference)} conversations"
        quality["iterations"] = iteration_trends(load_embedder(), reference, accepted, candidates or [])
    return quality


def _write(
    cfg: RunConfig, ctx: PersonaContext, seed_source: str, critics: list, state: dict, force: bool, failures: dict
) -> dict:
    accepted, rejected = state.get("accepted", []), state.get("rejected", [])
    extra = {
        "generator_model": cfg.generator,
        "critic_model": cfg.critic_model,
        "seed_source": seed_source,
    }
    data = to_dataset_dict(accepted, rejected, extra)
    metrics = conversation_stats([r["messages"] for r in accepted])
    faith = [v["score"] for r in accepted for v in r["verdicts"] if v["critic"] == "faithfulness" and v["valid"]]
    if faith:
        metrics["faithfulness_mean"] = round(sum(faith) / len(faith), 4)
    quality = run_quality(cfg, accepted, [r for r in accepted + rejected if r["messages"]])
    log_counts = dict(Counter(f"{e['stage']}: {e.get('reason', 'info')}".split(" (")[0] for e in state.get("log", [])))
    if failures:
        log_counts["backend failures (retried; this process)"] = failures
    card = persona_card(
        accepted=len(accepted),
        rejected=len(rejected),
        models={"generator": cfg.generator, "critic": cfg.critic_model, "expansion": cfg.model},
        critics=[{"name": c.name, "role": c.role, "description": c.description} for c in critics],
        settings=ctx.as_dict()
        | ({"critic_options": cfg.critic_options} if cfg.critic_options else {})
        | ({"tuned": state["tuned"], "tuned_generator": KEPT_NOTE} if state.get("tuned") else {}),
        stats=state.get("stats", []),
        metrics=metrics,
        seed_source=seed_source,
        log_counts=log_counts,
        quality=quality,
    )
    write_dataset(data, card, Path(cfg.out), force=force)
    return {
        "out": cfg.out,
        "accepted": len(accepted),
        "rejected": len(rejected),
        "stats": state.get("stats", []),
        "tuned": state.get("tuned", []),
        "metrics": metrics,
        "quality": quality,
        "backend_failures": failures,
        "new_attributes": len(state.get("new_attributes", [])),
        "queries": len(state.get("queries", [])),
        "profiles": len(state.get("profiles", [])),
    }
