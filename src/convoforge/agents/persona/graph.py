"""The Generator-Critic persona pipeline as a LangGraph state machine."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Awaitable, Callable
from itertools import pairwise
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send

from convoforge.agents.persona import stages
from convoforge.agents.persona.context import PersonaContext
from convoforge.agents.persona.state import GenerateInput, PersonaState, ShardInput, ShardState
from convoforge.critics.base import Candidate, Critic, Verdict, learns, verdicts_by_id
from convoforge.datasets.spc import TRANSCRIPT_MARKUP, as_row
from convoforge.errors import BackendError
from convoforge.llm import GenParams, keyed_rng, keyed_seed, load_chat_model, release_chat_model
from convoforge.llm.base import ChatModel
from convoforge.llm.embeddings import Embedder, load_embedder

# a shard graph run inside a checkpointed node must say durability="exit", which LangGraph then warns is moot
warnings.filterwarnings("ignore", message="`durability` has no effect", category=UserWarning)
ShardRunner = Callable[[list[GenerateInput], PersonaContext], Awaitable[dict]]
# (winners so far, the iteration just judged, settings) -> the tuned generator's spec and what was done
Tuner = Callable[[list[dict], int, PersonaContext], Awaitable[tuple[str, dict]]]


def build_graph(
    llm: ChatModel,
    critics: list[Critic],
    critic_llm: ChatModel | None = None,
    embedder: Embedder | None = None,
    checkpointer: Any = None,
    generator_llm: ChatModel | None = None,
    shard_runner: ShardRunner | None = None,
    tuner: Tuner | None = None,
    load_generator: Callable[[str], ChatModel] = load_chat_model,
    release_generator: Callable[[str], None] = release_chat_model,
):
    """Compile the pipeline: expansion, profiles, pairing, then per iteration shards of pairs, then `select`.

    `llm` runs persona expansion and profiles; `generator_llm` (default: `llm`) writes the conversations.
    Each shard runs `build_conversation_graph` in this process, or through `shard_runner` (Ray workers).
    With `tuner` and `tune_steps` set, `tune` follows each iteration but the last: the generator is tuned on the
    winners so far, and the next iteration writes with the spec it returns (loaded by `load_generator`); the
    tuned generator it replaces is let go (`release_generator`), so a run holds one tuned model at a time.
    """
    critic_llm = critic_llm or llm
    generator_llm = generator_llm or llm

    def emb() -> Embedder:
        return embedder or load_embedder()

    async def induce_queries(state: PersonaState, runtime: Runtime[PersonaContext]) -> dict:
        ctx = runtime.context
        log: list[dict] = []
        queries = await stages.induce_queries(
            llm, emb(), state["seed_attributes"], ctx, keyed_rng(ctx.seed, "induce"), log
        )
        return {"queries": queries, "log": [{"stage": "queries", **e} for e in log]}

    async def bootstrap_queries(state: PersonaState, runtime: Runtime[PersonaContext]) -> dict:
        ctx = runtime.context
        log: list[dict] = []
        queries = await stages.bootstrap_queries(llm, state["queries"], ctx, keyed_rng(ctx.seed, "queries"), log)
        return {"queries": queries, "log": [{"stage": "queries", **e} for e in log]}

    async def bootstrap_personas(state: PersonaState, runtime: Runtime[PersonaContext]) -> dict:
        ctx = runtime.context
        new, log = await stages.bootstrap_personas(
            llm, emb(), state["seed_attributes"], state["queries"], ctx, keyed_rng(ctx.seed, "personas")
        )
        return {"new_attributes": new, "log": [{"stage": "persona_bootstrap", **e} for e in log]}

    async def build_profiles(state: PersonaState, runtime: Runtime[PersonaContext]) -> dict:
        ctx = runtime.context
        attributes = state["seed_attributes"] + state.get("new_attributes", [])
        profiles, log = await stages.build_profiles(llm, emb(), attributes, ctx, keyed_rng(ctx.seed, "profiles"))
        return {"profiles": profiles, "log": [{"stage": "profiles", **e} for e in log]}

    def pair_profiles(state: PersonaState, runtime: Runtime[PersonaContext]) -> dict:
        pairs, info = stages.pair_profiles(emb(), state["profiles"], runtime.context)
        return {
            "pairs": pairs,
            "pool": state["seed_examples"],
            "iteration": 0,
            "log": [{"stage": "pairing", **info}],
        }

    def start_iteration(state: PersonaState) -> dict:
        return {"candidates": None, "verdicts": None}

    conversation_graphs = {"": build_conversation_graph(generator_llm, critics, critic_llm)}

    def conversations_graph(spec: str) -> Any:
        if spec not in conversation_graphs:  # a tuned generator: loaded once per process, replacing the last
            for old in [s for s in conversation_graphs if s]:
                del conversation_graphs[old]
                release_generator(old)
            conversation_graphs[spec] = build_conversation_graph(load_generator(spec), critics, critic_llm)
        return conversation_graphs[spec]

    def fan_out(state: PersonaState, runtime: Runtime[PersonaContext]) -> list[Send]:
        ctx, it = runtime.context, state["iteration"]
        rng = keyed_rng(ctx.seed, "pairs", it)
        pairs = state["pairs"]
        chosen = (
            rng.sample(pairs, ctx.pairs)
            if len(pairs) >= ctx.pairs
            else [pairs[k % len(pairs)] for k in range(ctx.pairs)]
        )
        pool = state["pool"]
        # with few_shot_nearest, each pair's examples come from the pool conversations about the nearest people
        vectors = emb().embed([stages.pair_text(e["profiles"]) for e in pool]) if ctx.few_shot_nearest else None
        jobs = []
        for k, (i, j) in enumerate(chosen):
            profiles = {"User 1": state["profiles"][i], "User 2": state["profiles"][j]}
            if vectors is None:
                examples = stages.draw_examples(pool, len(state["seed_examples"]), ctx, rng)
            else:
                examples = stages.nearest_examples(emb(), pool, vectors, profiles, ctx, rng)
            jobs.append(GenerateInput(pair_id=f"it{it}-p{k}", iteration=it, profiles=profiles, examples=examples))
        size = max(1, ctx.shard_size)
        spec = state.get("generator", "")
        return [
            Send("conversations", ShardInput(jobs=jobs[k : k + size], generator=spec))
            for k in range(0, len(jobs), size)
        ]

    async def conversations(shard: ShardInput, runtime: Runtime[PersonaContext]) -> dict:
        if shard_runner is not None:
            done = await shard_runner(shard["jobs"], runtime.context)
        else:
            done = await conversations_graph(shard.get("generator", "")).ainvoke(
                {"jobs": shard["jobs"]}, context=runtime.context, durability="exit"
            )
        return {"candidates": done.get("candidates", []), "verdicts": done.get("verdicts", {})}

    async def select_node(state: PersonaState, runtime: Runtime[PersonaContext]) -> dict:
        it = state["iteration"]
        cands = [Candidate(**c) for c in state["candidates"]]
        verdicts = {n: {cid: Verdict(**v) for cid, v in vs.items()} for n, vs in state.get("verdicts", {}).items()}
        learned = await learn_and_judge(critics, critic_llm, state, cands, verdicts)
        accepted, rejected = stages.sort_candidates(cands, verdicts, critics)
        pool = state["pool"] + [
            {
                "profiles": r["profiles"],
                "turns": [[m["speaker"], m["content"]] for m in r["messages"]],
            }
            for r in accepted
        ]
        return {
            "accepted": accepted,
            "rejected": rejected,
            "pool": pool,
            "iteration": it + 1,
            "stats": [
                stages.iteration_stats(it, cands, accepted, rejected, verdicts, critics, len(state["pool"]), learned)
            ],
        }

    async def tune(state: PersonaState, runtime: Runtime[PersonaContext]) -> dict:
        assert tuner is not None  # `more` routes here only with a tuner
        spec, info = await tuner(state.get("accepted", []), state["iteration"], runtime.context)
        # "": not tuned this time (no winner yet), the generator stays as it was
        return {
            "generator": spec or state.get("generator", ""),
            "tuned": [{"after_iteration": state["iteration"], **info}],
        }

    def more(state: PersonaState, runtime: Runtime[PersonaContext]) -> str:
        if state["iteration"] >= runtime.context.iterations:
            return END
        return "tune" if tuner is not None and runtime.context.tune_steps > 0 else "start_iteration"

    graph = StateGraph(PersonaState, context_schema=PersonaContext)
    for name, fn in [
        ("induce_queries", induce_queries),
        ("bootstrap_queries", bootstrap_queries),
        ("bootstrap_personas", bootstrap_personas),
        ("build_profiles", build_profiles),
        ("pair_profiles", pair_profiles),
        ("start_iteration", start_iteration),
        ("conversations", conversations),
        ("select", select_node),
        ("tune", tune),
    ]:
        graph.add_node(name, fn)
    chain = [
        "induce_queries",
        "bootstrap_queries",
        "bootstrap_personas",
        "build_profiles",
        "pair_profiles",
        "start_iteration",
    ]
    graph.add_edge(START, chain[0])
    for a, b in pairwise(chain):
        graph.add_edge(a, b)
    graph.add_conditional_edges("start_iteration", fan_out, ["conversations"])
    graph.add_edge("conversations", "select")
    graph.add_conditional_edges("select", more, ["tune", "start_iteration", END])
    graph.add_edge("tune", "start_iteration")
    return graph.compile(checkpointer=checkpointer)


async def learn_and_judge(
    critics: list[Critic], critic_llm: ChatModel, state: dict, cands: list[Candidate], verdicts: dict
) -> dict:
    """Critics that learn over the run: fit on the seed examples and earlier iterations, then judge this iteration.

    Their verdicts are added to `verdicts`; what each learnt is returned. A `learn` that raises makes that
    critic's verdicts invalid (they drop nothing), as a crash in `judge` does, and its error is what it learnt.
    """
    learned: dict = {}
    learners = [c for c in critics if learns(c)]
    if not learners:
        return learned
    real = [as_row(e) for e in state["seed_examples"]]  # pool examples hold SPC's profiles and turns
    earlier = [r for r in state.get("accepted", []) + state.get("rejected", []) if stages.was_judged(r)]
    usable = [c for c in cands if c.usable]
    for critic in learners:
        try:
            learned[critic.name] = await asyncio.to_thread(critic.learn, real, earlier)
        except Exception as exc:  # a user's critic must not end a long run
            error = f"learn failed: {type(exc).__name__}: {exc}"
            learned[critic.name] = {"error": error}
            verdicts[critic.name] = {c.id: Verdict.invalid(critic.name, "", error) for c in usable}
            continue
        verdicts[critic.name] = await verdicts_by_id(critic, usable, critic_llm)
    return learned


def build_conversation_graph(generator_llm: ChatModel, critics: list[Critic], critic_llm: ChatModel | None = None):
    """One shard of persona pairs: each pair's candidates are written, then every critic judges them as its own node."""
    critic_llm = critic_llm or generator_llm
    critics = [c for c in critics if not learns(c)]  # those judge at selection, where the earlier iterations are

    def fan_out(state: ShardState) -> list[Send]:
        return [Send("generate", job) for job in state["jobs"]]

    async def generate(job: GenerateInput, runtime: Runtime[PersonaContext]) -> dict:
        ctx = runtime.context
        gen = stages.GenerationJob(job["pair_id"], job["iteration"], job["profiles"], job["examples"])
        params = GenParams(
            temperature=ctx.temperature,
            top_k=ctx.top_k,
            max_tokens=ctx.max_tokens,
            n=ctx.candidates,
            frequency_penalty=ctx.frequency_penalty,
            presence_penalty=ctx.presence_penalty,
            penalty_exempt=TRANSCRIPT_MARKUP,
            seed=keyed_seed(ctx.seed, "generate", job["pair_id"]),  # candidate c samples with seed + c
        )
        messages = stages.generator_messages(gen, ctx)
        try:
            result = await generator_llm.achat(messages, params)
        except BackendError as exc:  # the request failed for good (after retries): recorded, not a crashed run
            failed = [stages.failed_candidate(gen, c, str(exc)) for c in range(ctx.candidates)]
            return {"candidates": [cand.model_dump() for cand in failed]}
        parsed = [stages.parse_candidate(t, gen, c, ctx, messages) for c, t in enumerate(result.texts)]
        return {"candidates": [cand.model_dump() for cand in parsed]}

    def critic_node(critic: Critic):
        async def judge(state: ShardState) -> dict:
            cands = [cand for c in state["candidates"] if (cand := Candidate(**c)).usable]
            verdicts = await verdicts_by_id(critic, cands, critic_llm)
            return {"verdicts": {critic.name: {cid: v.model_dump() for cid, v in verdicts.items()}}}

        return judge

    graph = StateGraph(ShardState, context_schema=PersonaContext)
    graph.add_node("generate", generate)
    graph.add_conditional_edges(START, fan_out, ["generate"])
    if not critics:
        graph.add_edge("generate", END)
    for critic in critics:
        node = f"critic_{critic.name}"
        graph.add_node(node, critic_node(critic))
        graph.add_edge("generate", node)
        graph.add_edge(node, END)
    return graph.compile(checkpointer=False)
