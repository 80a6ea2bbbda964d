"""Fresh generations of a policy on persona pairs, judged by the critics.

`eval policy` measures policies with them. `generate samples` writes them as a persona dataset, so the
policy's own winners and losers become on-policy preference pairs (`export --format pairs`) for the next
DPO round: the Generator-Critic loop closed through training instead of few-shot examples.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

from convoforge.agents.persona.context import PersonaContext
from convoforge.agents.persona.stages import GenerationJob, iteration_stats, parse_candidate, sort_candidates
from convoforge.critics.base import Candidate, Critic, Verdict, judging_once, verdicts_by_id
from convoforge.critics.selection import failed_filters
from convoforge.errors import ConvoforgeError
from convoforge.llm import GenParams, keyed_seed, load_chat_model
from convoforge.training.generator import prompt_rows, real_answer
from convoforge.training.lora import load_split

TEMPERATURE = 0.8


def seeded_sample(rows: list, limit: int | None, seed: int) -> list:
    """At most `limit` of the rows, a seeded sample (all of them when there are no more)."""
    return random.Random(seed).sample(rows, limit) if limit and len(rows) > limit else rows


def split_rows(data: Path, split: str, limit: int | None, seed: int, per_pair: bool = False) -> list[dict]:
    """A seeded sample of one split of an export (one row per persona pair when per_pair); never empty."""
    rows = list(load_split(data, split))
    if per_pair:
        rows = list({r["pair_id"]: r for r in rows}.values())
    rows = seeded_sample(rows, limit, seed)
    if not rows:
        raise ConvoforgeError(f"{data} has an empty {split} split")
    return rows


def persona_pairs(data: Path, split: str, limit: int | None, seed: int) -> list[dict]:
    """A seeded sample of an export's persona pairs (one row each); an export without them is refused."""
    if not {"prompt", "profiles", "pair_id"} <= set(load_split(data, split).column_names):  # memory-mapped: cheap
        raise ConvoforgeError(f"{data} has no persona pairs (export a persona run with --format pairs or thumbs)")
    return split_rows(data, split, limit, seed, per_pair=True)


def complete_all(llm: Any, prompts: list[Any], params: GenParams, keys: list[str] | None = None) -> list[Any]:
    """All prompts at once, so the local backend batches them; seeded, each prompt with a seed of its own.

    One seed for every prompt would couple their samples: the same random draws would pick each prompt's tokens,
    so different prompts' conversations would often open alike (README Results). A prompt's seed comes from the
    run's seed and its key (its persona pair), so two policies sampled on the same pairs share each pair's draws.
    """
    keys = keys or [str(i) for i in range(len(prompts))]

    def own(key: str) -> GenParams:
        return params if params.seed is None else replace(params, seed=keyed_seed(params.seed, key))

    async def run() -> list[Any]:
        return await asyncio.gather(*[llm.achat(p, own(k)) for p, k in zip(prompts, keys, strict=True)])

    return asyncio.run(run())


def generate(
    rows: list[dict],
    llm: Any,
    samples: int,
    ctx: PersonaContext,
    max_tokens: int,
    seed: int,
    tag: str = "",
    params: GenParams | None = None,
) -> list[Candidate]:
    """`samples` conversations per persona-pair row from the policy `llm`, parsed; ids prefixed with `tag`."""
    params = params or GenParams(temperature=TEMPERATURE, max_tokens=max_tokens, n=samples, seed=seed)
    candidates = []
    results = complete_all(llm, [r["prompt"] for r in rows], params, [r["pair_id"] for r in rows])
    for row, result in zip(rows, results, strict=True):
        job = GenerationJob(pair_id=row["pair_id"], iteration=0, profiles=row["profiles"])
        for i, text in enumerate(result.texts):
            cand = parse_candidate(text, job, i, ctx, row["prompt"])
            candidates.append(cand.model_copy(update={"id": tag + cand.id}))
    return candidates


def spc_prompts(
    data: Path,
    ctx: PersonaContext,
    limit: int | None,
    samples: int,
    max_tokens: int,
    seed: int,
    drop_leaky: bool = False,
) -> tuple[list[dict], GenParams]:
    """A seeded sample of an SPC CSV's train pairs in the generator's prompt, and the graph's sampling params."""
    rows = seeded_sample(prompt_rows(data, ctx, seed=seed, drop_leaky=drop_leaky), limit, seed)
    return rows, GenParams(temperature=ctx.temperature, top_k=ctx.top_k, max_tokens=max_tokens, n=samples, seed=seed)


def judge(candidates: list[Candidate], critics: list[Critic], critic_llm: Any) -> dict[str, dict[str, Verdict]]:
    """Every critic's verdict on every parseable candidate."""
    parsed = [c for c in candidates if c.usable]

    async def run() -> dict:
        return {critic.name: await verdicts_by_id(critic, parsed, critic_llm) for critic in critics}

    return asyncio.run(run())


def passes(cand: Candidate, verdicts: dict[str, dict[str, Verdict]], critics: list[Critic]) -> bool:
    """Parses, passes hygiene, and no filter critic drops it: what acceptance counts."""
    return cand.usable and not failed_filters(cand, verdicts, critics)


def sample_run(
    data: Path,
    model: str,
    out: Path,
    critic_refs: list[str],
    critic_model: str,
    samples: int = 4,
    split: str = "train",
    limit: int | None = None,
    min_turns: int = 3,
    max_tokens: int = 320,
    seed: int = 0,
    force: bool = False,
    base_url: str | None = None,
    drop_leaky: bool = False,
    critic_options: dict[str, dict] | None = None,
) -> dict:
    """Sample the policy on an export's persona pairs, judge, and write accepted/rejected as a persona dataset.

    With an SPC CSV and `drop_leaky`, no train conversation with placeholders is a pair or a few-shot example.
    `critic_options` are the critics' settings by critic name (`--critic-option`).
    """
    from convoforge.critics.plugins import load_critics
    from convoforge.datasets.card import persona_card
    from convoforge.datasets.metrics import conversation_stats
    from convoforge.datasets.records import to_dataset_dict, write_dataset

    if out.exists() and not force:
        raise ConvoforgeError(f"{out} exists; pass --force to replace it (it is kept until the new one is done)")
    critics = judging_once(load_critics(critic_refs, critic_options), "generate samples")
    ctx = PersonaContext(min_turns=min_turns)
    params = None
    if data.suffix == ".csv":  # an SPC CSV: its train pairs in the generator's own prompt, sampled as the graph does
        rows, params = spc_prompts(data, ctx, limit, samples, max_tokens, seed, drop_leaky)
        split = "train"
    else:
        rows = persona_pairs(data, split, limit, seed)
    llm = load_chat_model(model, base_url=base_url)
    critic_llm = llm if critic_model == model else load_chat_model(critic_model, base_url=base_url)
    candidates = generate(rows, llm, samples, ctx, max_tokens, seed, params=params)
    verdicts = judge(candidates, critics, critic_llm)
    accepted, rejected = sort_candidates(candidates, verdicts, critics)
    stats = iteration_stats(0, candidates, accepted, rejected, verdicts, critics, 0)
    settings = {"samples": samples, "split": split, "min_turns": min_turns, "max_tokens": max_tokens, "seed": seed}
    settings |= {"temperature": params.temperature if params else TEMPERATURE}
    if critic_options:
        settings["critic_options"] = critic_options
    source = f"persona pairs of the {split} split of {data}"
    card = persona_card(
        accepted=len(accepted),
        rejected=len(rejected),
        models={"generator": model, "critic": critic_model},
        critics=[{"name": c.name, "role": c.role, "description": c.description} for c in critics],
        settings=settings,
        stats=[stats],
        metrics=conversation_stats([r["messages"] for r in accepted]),
        seed_source=source,
        log_counts={},
    )
    extra = {"generator_model": model, "critic_model": critic_model, "seed_source": source}
    write_dataset(to_dataset_dict(accepted, rejected, extra), card, out, force=force)
    passed = sum(passes(c, verdicts, critics) for c in candidates)
    losers = {r["pair_id"] for r in rejected if r["messages"]}
    return {
        "out": str(out),
        "pairs": len(rows),
        "candidates": len(candidates),
        "parse_rate": round(sum(not c.parse_error for c in candidates) / len(candidates), 4),
        "acceptance": round(passed / len(candidates), 4),
        "accepted": len(accepted),
        "rejected": len(rejected),
        "pairs_with_winner_and_loser": len(losers & {a["pair_id"] for a in accepted}),
        "rejection_reasons": stats["rejection_reasons"],
    }


def real_pairs(
    data: Path,
    model: str,
    out: Path,
    samples: int = 2,
    limit: int | None = None,
    ctx: PersonaContext | None = None,
    seed: int = 0,
    force: bool = False,
    base_url: str | None = None,
    drop_leaky: bool = False,
) -> dict:
    """SPIN's pairs (arXiv 2401.01335): the real SPC conversation chosen over each of the policy's own samples.

    The policy writes `samples` conversations for each train persona pair of an SPC CSV in the generator's own
    prompt (the graph's temperature and top-k; `ctx` holds the turn bounds and the token budget); the real
    conversation, cut to a random 3-7 turns per user within those bounds, is chosen over each raw sample. No
    critic is involved: the signal is realism itself. The pairs are a DPO export (`train dpo`), its test split
    held out by a hash of the persona pair. With `drop_leaky`, no conversation the hygiene flags as prompt text
    (SPC's own placeholders) is a prompt's example or a chosen answer.
    """
    from convoforge.datasets.export import pair_splits
    from convoforge.datasets.records import write_dataset

    if data.suffix != ".csv":
        raise ConvoforgeError(f"{data}: real pairs need a Synthetic-Persona-Chat CSV (its train conversations)")
    if out.exists() and not force:
        raise ConvoforgeError(f"{out} exists; pass --force to replace it (it is kept until the new one is done)")
    ctx = ctx or PersonaContext(min_turns=3, max_tokens=320)  # the bounds `generate samples` uses
    rows, params = spc_prompts(data, ctx, limit, samples, ctx.max_tokens, seed, drop_leaky)
    llm = load_chat_model(model, base_url=base_url)
    results = complete_all(llm, [r["prompt"] for r in rows], params, [r["pair_id"] for r in rows])
    rng = random.Random(seed)
    made: list[dict] = []
    for row, result in zip(rows, results, strict=True):
        _, real = real_answer(row["turns"], rng, max(ctx.min_turns, 3), max(ctx.max_turns, ctx.min_turns))
        made += [
            {
                "id": f"{row['pair_id']}-s{i}",
                "pair_id": row["pair_id"],
                "profiles": row["profiles"],
                "prompt": row["prompt"],
                "chosen": [{"role": "assistant", "content": real}],
                "rejected": [{"role": "assistant", "content": text.strip()}],
            }
            for i, text in enumerate(result.texts)
            if text.strip() and text.strip() != real
        ]
    dataset = pair_splits(made)
    if not len(dataset["train"]):
        raise ConvoforgeError(f"{data}: no real pairs in the train split (the policy wrote nothing?)")
    card = (
        "---\ntags: [convoforge, dpo, spin, trl]\n---\n\n# convoforge real-vs-own pairs (SPIN)\n\n"
        f"The real conversation of each train persona pair of `{data.name}` chosen over {samples} samples of "
        f"`{model}` in the generator's prompt.\n"
    )
    write_dataset(dataset, card, out, force=force)
    return {"out": str(out), "pairs": len(rows), "train": len(dataset["train"]), "test": len(dataset["test"])}
