"""The persona pipeline's shards on Ray workers: each worker loads the models once and runs the conversation graph."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from convoforge.agents.persona.context import PersonaContext
from convoforge.agents.persona.graph import ShardRunner, build_conversation_graph
from convoforge.agents.persona.state import GenerateInput
from convoforge.critics import load_critics
from convoforge.llm import load_chat_model
from convoforge.llm.base import ChatModel


def failure_counts(models: list[ChatModel]) -> Counter:
    """Backend failures so far of each distinct model, keyed 'model @ where'."""
    counts: Counter = Counter()
    for model in {id(m): m for m in models}.values():
        for where, count in getattr(model, "failures", {}).items():
            counts[f"{model.name} @ {where}"] += count
    return counts


class ShardWorker:
    """Runs shards of persona pairs with the generator and critic models of one run (built once per worker)."""

    def __init__(self, run: dict) -> None:
        generator, critic = run["generator_model"] or run["model"], run["critic_model"]
        self.generator_llm = load_chat_model(generator, base_url=run.get("base_url"))
        same = critic == generator
        self.critic_llm = self.generator_llm if same else load_chat_model(critic, base_url=run.get("base_url"))
        critics = load_critics(run["critics"], run.get("critic_options") or {})
        self.graph = build_conversation_graph(self.generator_llm, critics, self.critic_llm)

    async def __call__(self, payload: tuple[list[GenerateInput], dict]) -> dict:
        """Candidates and verdicts of one shard, with the backend failures met while running it."""
        jobs, context = payload
        before = failure_counts([self.generator_llm, self.critic_llm])
        done = await self.graph.ainvoke({"jobs": jobs}, context=PersonaContext(**context))
        failures = failure_counts([self.generator_llm, self.critic_llm]) - before
        return {"candidates": done.get("candidates", []), "verdicts": done.get("verdicts", {}), "failures": failures}


@dataclass
class ShardWorkerFactory:
    """Picklable recipe of a ShardWorker (Ray ships it to each worker)."""

    run: dict

    def __call__(self) -> ShardWorker:
        """Build the worker in the Ray process."""
        return ShardWorker(self.run)


def ray_runner(run: dict, ray: dict) -> tuple[ShardRunner, Any, Counter]:
    """A shard runner over a Ray pool for `run` (RunConfig as a dict); also the pool and the failures it gathers."""
    from convoforge.cluster import RayPool

    pool = RayPool(ShardWorkerFactory(run), workers=ray.get("workers"), address=ray.get("address"))
    pool.wait_ready()
    failures: Counter = Counter()

    async def runner(jobs: list[GenerateInput], ctx: PersonaContext) -> dict:
        done = await pool.run((jobs, ctx.as_dict()))
        failures.update(done.pop("failures", {}))
        return done

    return runner, pool, failures
