"""Running many simulated sessions against an agent and writing them as a labelled dataset."""

from __future__ import annotations

import asyncio
import json
import random
import statistics
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict

from convoforge.datasets.catalog import Catalog, movielens_likes
from convoforge.datasets.records import write_dataset
from convoforge.errors import ConvoforgeError
from convoforge.llm.base import ChatModel
from convoforge.simulators.loop import build_loop
from convoforge.simulators.related import Relatedness, names_in
from convoforge.simulators.user import SimulatedUser, UserControls


def shipped_profiles() -> list[str]:
    """Session-level profiles that come with convoforge."""
    text = resources.files("convoforge.simulators").joinpath("data/profiles.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


def holdout_items(plan: dict, catalog: Catalog) -> set[str]:
    """Target ids of `plan["holdout"]` (an iEvaLM turns file): never simulated, so evaluating on them stays fair."""
    from convoforge.simulators.evaluate_crs import load_turns

    if not plan.get("holdout"):
        return set()
    return {t for turn in load_turns(plan["holdout"], catalog) for t in turn["targets"]}


def target_pool(agent: Any, n: int, plan: dict, rng: random.Random) -> list[list[str]]:
    """Targets per session: a turns file's `rec` items, or catalogue items (uniform or by popularity)."""
    from convoforge.simulators.evaluate_crs import load_turns

    catalog = agent.retriever.catalog
    banned = holdout_items(plan, catalog)
    if plan.get("turns"):
        pool = [
            ids for t in load_turns(plan["turns"], catalog) if (ids := [i for i in t["targets"] if i not in banned])
        ]
    else:
        items = [it for it in catalog.items if it.id not in banned]
        rank = {catalog.items[i].id: r for r, i in enumerate(agent.retriever.popular)} if plan.get("popularity") else {}
        if rank:  # Zipf-like over the popular items, a floor for the long tail
            weights = [1.0 / (rank[it.id] + 10) if it.id in rank else 1.0 / (len(rank) + 100) for it in items]
            pool = [[it.id] for it in rng.choices(items, weights, k=n)]
        else:
            pool = [[it.id] for it in rng.sample(items, min(len(items), max(n, 1)))]
    if not pool:
        raise ConvoforgeError("no targets left to simulate (all held out?)")
    return pool


def history_pool(
    ratings: Path, catalog: Catalog, banned: set[str], n: int, rng: random.Random, mention: int = 3
) -> list[tuple[list[str], list[str]]]:
    """(target, liked) per session from real MovieLens users: one liked film is the goal, others they may name.

    The films named are the user's other likes closest in genre to the goal (ties broken at random), as a
    ReDial seeker asks for "a horror movie like The Babadook".
    """
    likes = movielens_likes(ratings, catalog)
    users = [ids for ids in likes.values() if len(ids) >= 2 and any(i not in banned for i in ids)]
    if not users:
        raise ConvoforgeError(f"{ratings}: no user likes two catalogue films with one not held out")
    pool = []
    for ids in rng.choices(users, k=n):
        target = rng.choice([i for i in ids if i not in banned])
        goal = names_in(catalog.by_id[target], "genre")

        def closeness(i: str, goal: set[str] = goal) -> float:
            other = names_in(catalog.by_id[i], "genre")
            return len(goal & other) / max(len(goal | other), 1)

        others = sorted((i for i in ids if i != target), key=lambda i: (-closeness(i), rng.random()))
        pool.append(([target], others[:mention]))
    return pool


def plan_sessions(agent: Any, n: int, plan: dict, max_turns: int, seed: int) -> list[UserControls]:
    """Controls for n sessions: targets from a rating history (`plan["histories"]`) or from `target_pool`.

    With `plan["related"]` = k, a `target_pool` user names k catalogue films related to the goal.
    """
    rng = random.Random(seed)
    catalog = agent.retriever.catalog
    if plan.get("histories"):
        pool = history_pool(Path(plan["histories"]), catalog, holdout_items(plan, catalog), n, rng)
    elif plan.get("related"):
        index, k = Relatedness.of(catalog), plan["related"]
        pool = [(targets, index.related(targets[0], k, rng)) for targets in target_pool(agent, n, plan, rng)]
    else:
        pool = [(targets, []) for targets in target_pool(agent, n, plan, rng)]
    profiles = shipped_profiles()
    return [
        UserControls(
            profile=rng.choice(profiles),
            targets=pool[i % len(pool)][0],
            liked=pool[i % len(pool)][1],
            patience=rng.randint(2, max_turns),
            verbosity=rng.choice(["terse", "normal", "chatty"]),
            knowledge=rng.choice(["novice", "expert"]),
            seed=seed * 100_003 + i,
        )
        for i in range(n)
    ]


async def run_session(
    agent: Any, llm: ChatModel | None, controls: UserControls, i: int, plan: dict, max_turns: int, seed: int
) -> dict:
    """One simulated session against the agent, as a dataset row (hidden controls and per-turn labels)."""
    catalog = agent.retriever.catalog
    liked = [catalog.by_id[t] for t in controls.liked]
    targets = [catalog.by_id[t] for t in controls.targets]
    user = SimulatedUser(controls, targets, llm, liked, plan.get("style"))
    loop = build_loop(user, agent, max_turns=max_turns)
    state = await loop.ainvoke({"session_id": f"sim-{seed}-{i}"}, {"recursion_limit": 4 * max_turns + 10})
    return {
        "id": f"sim-{seed}-{i}",
        "profile": controls.profile,
        "targets": controls.targets,
        "target_names": [catalog.by_id[t].name for t in controls.targets],
        "target_texts": [catalog.by_id[t].text() for t in controls.targets],
        "liked_names": [it.name for it in liked],
        "patience": controls.patience,
        "verbosity": controls.verbosity,
        "knowledge": controls.knowledge,
        "messages": [
            {
                "role": m["role"],
                "content": m["content"],
                "intent": m.get("intent", ""),
                "source": m.get("source", ""),
                "items": m.get("items", []),
                "leaks_removed": m.get("leaks_removed", 0),
            }
            for m in state["messages"]
        ],
        "outcome": state.get("outcome", ""),
        "hit_turn": state.get("hit_turn", -1),
        "agent_turns": state.get("turn", 0),
    }


class SessionWorker:
    """Runs shards of sessions in a Ray worker: the agent (retriever, models) built once from a recipe."""

    def __init__(self, recipe: Any, llm_simulator: bool, plan: dict, max_turns: int, seed: int) -> None:
        self.agent, llm = recipe.build()
        self.llm = llm if llm_simulator else None
        self.plan, self.max_turns, self.seed = plan, max_turns, seed

    async def __call__(self, shard: list[tuple[int, UserControls]]) -> list[dict]:
        """The rows of one shard of (index, controls)."""
        return await asyncio.gather(
            *[run_session(self.agent, self.llm, c, i, self.plan, self.max_turns, self.seed) for i, c in shard]
        )


@dataclass
class SessionWorkerFactory:
    """Picklable recipe of a SessionWorker."""

    recipe: Any
    llm_simulator: bool
    plan: dict
    max_turns: int
    seed: int

    def __call__(self) -> SessionWorker:
        """Build the worker in the Ray process."""
        return SessionWorker(self.recipe, self.llm_simulator, self.plan, self.max_turns, self.seed)


async def _on_ray(plans: list[UserControls], factory: SessionWorkerFactory, ray: dict) -> list[dict]:
    """Sessions in shards on a Ray actor pool; rows come back in session order, whatever finished first."""
    from convoforge.cluster import RayPool

    pool = RayPool(factory, workers=ray.get("workers"), address=ray.get("address"))
    try:
        pool.wait_ready()
        size = ray.get("shard_size") or max(1, -(-len(plans) // (4 * len(pool))))
        items = list(enumerate(plans))
        shards = [items[k : k + size] for k in range(0, len(items), size)]
        done = await asyncio.gather(*[pool.run(shard) for shard in shards])
    finally:
        pool.close()
    return [row for rows in done for row in rows]


async def simulate_sessions(
    agent: Any,
    llm: ChatModel | None,
    n: int,
    out: Path,
    plan: dict,
    max_turns: int,
    seed: int,
    force: bool = False,
    concurrency: int = 8,
    ray: dict | None = None,
) -> dict:
    """Simulate n sessions concurrently (here, or on Ray workers built from `ray["recipe"]`) and write them."""
    catalog = agent.retriever.catalog
    plans = plan_sessions(agent, n, plan, max_turns, seed)
    if ray is not None:
        factory = SessionWorkerFactory(ray["recipe"], llm is not None, plan, max_turns, seed)
        rows = await _on_ray(plans, factory, ray)
    else:
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int, controls: UserControls) -> dict:
            async with gate:
                return await run_session(agent, llm, controls, i, plan, max_turns, seed)

        rows = await asyncio.gather(*[one(i, c) for i, c in enumerate(plans)])
    outcomes = Counter(r["outcome"] for r in rows)
    intents = Counter(m["intent"] for r in rows for m in r["messages"] if m["role"] == "user")
    summary = {
        "sessions": len(rows),
        "outcomes": dict(outcomes),
        "success_rate": round(outcomes.get("accepted", 0) / len(rows), 4),
        "avg_agent_turns": round(statistics.fmean(r["agent_turns"] for r in rows), 3),
        "intents": dict(intents),
        "leaks_removed": sum(m["leaks_removed"] for r in rows for m in r["messages"]),
        "simulator": ("llm" if llm else "template") + (" + seeker style" if plan.get("style") else ""),
        "seeker_style": plan["style"].sizes() if plan.get("style") else None,
        "catalog": catalog.source,
        "targets": {k: str(v) if isinstance(v, Path) else v for k, v in plan.items() if v and k != "style"},
    }
    card = "\n".join(
        [
            "---",
            "tags: [synthetic, user-simulation, conversational-recommendation, convoforge]",
            "---",
            "",
            "# Simulated recommendation sessions (convoforge)",
            "",
            "Controllable simulated users (RecLLM, Friedman et al. 2023) talking to the convoforge recommender.",
            "Every session keeps its hidden controls (profile, target items, patience, verbosity, knowledge)",
            "and every user turn its intent, as ground-truth labels. Target titles are filtered out of",
            "user turns with fuzzy matching (partial ratio > 90, as iEvaLM).",
            "",
            "```json",
            json.dumps(summary, indent=2),
            "```",
            "",
            "Re-measure realism: `convoforge eval simulator --sessions THIS_FOLDER --dialogs valid_dialogs.jsonl`.",
            "",
        ]
    )
    write_dataset(DatasetDict({"sessions": Dataset.from_list(rows)}), card, out, force=force)
    return summary
