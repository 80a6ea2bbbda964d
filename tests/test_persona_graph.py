"""The whole persona graph with scripted answers: iterations, few-shot pool, user critics as nodes."""

from __future__ import annotations

import zlib
from dataclasses import replace

import pytest

from convoforge.agents.persona.context import PersonaContext
from convoforge.agents.persona.graph import build_conversation_graph, build_graph
from convoforge.agents.persona.seeds import load_seeds
from convoforge.critics import load_critics
from convoforge.llm.scripted import ScriptedChatModel
from convoforge.llm.types import ChatResult, Usage
from tests.persona_fakes import answer, pipeline_reply

pytestmark = pytest.mark.slow  # loads MiniLM


async def run(critics, ctx, llm=None):
    seeds = load_seeds(None)
    llm = llm or ScriptedChatModel(pipeline_reply)
    graph = build_graph(llm, load_critics(critics))
    state = await graph.ainvoke({"seed_attributes": seeds.attributes, "seed_examples": seeds.examples}, context=ctx)
    return state, llm, graph


async def test_iterations_grow_the_few_shot_pool_with_winners():
    ctx = PersonaContext(iterations=3, pairs=3, candidates=2, persona_target=3, query_steps=1, few_shot=10, min_turns=3)
    state, llm, _ = await run(["quality_depth", "toxicity", "tests.persona_fakes:brevity"], ctx)
    assert [s["few_shot_pool"] for s in state["stats"]] == [4, 7, 10]
    assert len(state["accepted"]) == 9 and len(state["rejected"]) == 9
    gen_prompts = [m[-1].content for m in llm.requests if "Now write a new conversation" in m[-1].content]
    assert len(gen_prompts) == 9
    winner_profile = " ".join(state["accepted"][0]["profiles"]["User 1"])
    later = gen_prompts[6:]  # iteration 2 prompts see iteration 0/1 winners as examples
    assert any(winner_profile in p for p in later)
    assert all(r["iteration"] < 3 for r in state["accepted"])
    assert len({r["id"] for r in state["accepted"] + state["rejected"]}) == 18


async def test_winner_share_one_shows_later_iterations_only_winners():
    from convoforge.agents.persona import stages

    ctx = PersonaContext(iterations=2, pairs=3, candidates=2, persona_target=3, query_steps=1, few_shot=1, min_turns=3)
    critics = ["quality_depth", "toxicity", "tests.persona_fakes:brevity"]
    state, llm, _ = await run(critics, replace(ctx, winner_share=1.0))
    first = [r for r in state["accepted"] if r["iteration"] == 0]
    assert first
    shown = {
        stages.render_example(
            {"profiles": r["profiles"], "turns": [[m["speaker"], m["content"]] for m in r["messages"]]}
        )
        for r in first
    }
    prompts = [m[-1].content for m in llm.requests if "Now write a new conversation" in m[-1].content]
    assert len(prompts) == 6
    assert all(any(p.startswith(w) for w in shown) for p in prompts[3:])  # iteration 2: a winner each
    assert not any(p.startswith(w) for w in shown for p in prompts[:3])


async def test_user_critics_are_graph_nodes_and_their_verdicts_are_kept():
    ctx = PersonaContext(iterations=1, pairs=2, candidates=2, persona_target=2, query_steps=1, min_turns=3)
    critics = ["tests.persona_fakes:brevity", "tests.persona_fakes:NoQuestions"]
    state, llm, _ = await run(critics, ctx)
    shard_graph = build_conversation_graph(llm, load_critics(critics))
    assert {"generate", "critic_brevity", "critic_no_questions"} <= set(shard_graph.get_graph().nodes)
    record = state["accepted"][0]
    names = [v["critic"] for v in record["verdicts"]]
    assert names == ["brevity", "no_questions"]
    assert record["verdicts"][1]["passed"] is True


async def test_unparseable_candidates_are_rejected_with_raw_text():
    def reply(messages):
        text = messages[-1].content
        return "I refuse to write conversations." if "Now write" in text else pipeline_reply(messages)

    ctx = PersonaContext(iterations=1, pairs=2, candidates=2, persona_target=1, query_steps=0)
    state, _, _ = await run(["toxicity"], ctx, ScriptedChatModel(reply))
    assert state["accepted"] == [] and len(state["rejected"]) == 4
    assert all(r["reason"].startswith("unparseable") and r["raw"] for r in state["rejected"])
    assert state["rejected"][0]["verdicts"][0]["error"] == "not judged"


class SeedRecording(ScriptedChatModel):
    """A seeded model's stand-in: the scripted pipeline's answer chosen by prompt and seed; notes each request."""

    def __init__(self) -> None:
        super().__init__(pipeline_reply)
        self.seen: list[tuple[str, bool, int | None]] = []

    async def _agenerate(self, messages, params, json_schema=None):
        text = messages[-1].content
        self.seen.append((text, params.greedy, params.seed))
        seed = zlib.crc32(text.encode()) + (params.seed or 0)
        texts = [answer(text, seed + c) for c in range(params.n)]  # as the local backend: candidate c, seed + c
        return ChatResult(texts, Usage(0, 0), self.name, ["stop"] * params.n)


async def test_the_run_seed_fixes_the_seed_of_every_sampled_request():
    ctx = PersonaContext(iterations=2, pairs=2, candidates=2, persona_target=2, query_steps=1, min_turns=3, seed=3)
    runs = []
    for seed in (3, 3, 4):
        llm = SeedRecording()
        await run(["toxicity"], replace(ctx, seed=seed), llm)
        runs.append(sorted((text, sampled) for text, greedy, sampled in llm.seen if not greedy))
    stages_seen = {text.split("\n", 1)[0][:30] for text, _ in runs[0]}
    assert len(stages_seen) >= 3  # expansion, query bootstrap and conversations all sample
    assert all(seed is not None for _, seed in runs[0])
    assert runs[0] == runs[1]  # the same run seed: the same prompts with the same sampling seeds
    generated = [{s for t, s in r if "Now write a new conversation" in t} for r in (runs[0], runs[2])]
    assert generated[0] and not generated[0] & generated[1]  # another run seed samples otherwise


async def test_few_shot_nearest_shows_each_pair_the_pool_conversation_about_the_nearest_people():
    from convoforge.agents.persona import stages
    from convoforge.llm.embeddings import load_embedder

    ctx = PersonaContext(
        iterations=1, pairs=3, candidates=1, persona_target=2, query_steps=1, few_shot=1, few_shot_nearest=1
    )
    _, llm, _ = await run(["toxicity"], ctx)
    pool = load_seeds(None).examples
    embedder = load_embedder()
    vectors = embedder.embed([stages.pair_text(e["profiles"]) for e in pool])
    prompts = [m[-1].content for m in llm.requests if "Now write a new conversation" in m[-1].content]
    assert len(prompts) == 3
    for prompt in prompts:
        task = prompt.rsplit("Now write a new conversation", 1)[1]
        people = [line.split(":", 1)[1].strip() for line in task.splitlines() if " persona:" in line]
        nearest = pool[int((vectors @ embedder.embed([" ".join(people)])[0]).argmax())]
        assert prompt.startswith(stages.render_example(nearest))


async def test_the_conversations_are_sampled_with_the_contexts_penalties():
    ctx = PersonaContext(iterations=1, pairs=2, candidates=2, persona_target=1, query_steps=0, min_turns=3)
    _, llm, _ = await run(["toxicity"], replace(ctx, frequency_penalty=0.4, presence_penalty=0.1))
    asked = zip(llm.requests, llm.params, strict=True)
    generated = [p for m, p in asked if "Now write a new conversation" in m[-1].content]
    assert generated and {(p.frequency_penalty, p.presence_penalty, p.n) for p in generated} == {(0.4, 0.1, 2)}
    assert all(p.penalty_exempt == ("User 1:", "User 2:", "\n") for p in generated)  # its own markup is free


async def test_a_critic_that_learns_judges_at_selection_after_learning_from_earlier_iterations():
    from convoforge.agents.persona.stages import was_judged

    ctx = PersonaContext(iterations=3, pairs=3, candidates=2, persona_target=3, query_steps=1, min_turns=3)
    critics = load_critics(["toxicity", "tests.persona_fakes:Learner"])
    learner, seeds, llm = critics[1], load_seeds(None), ScriptedChatModel(pipeline_reply)
    graph = build_graph(llm, critics)
    state = await graph.ainvoke({"seed_attributes": seeds.attributes, "seed_examples": seeds.examples}, context=ctx)
    nodes = set(build_conversation_graph(llm, critics).get_graph().nodes)
    assert "critic_toxicity" in nodes and "critic_learner" not in nodes  # it judges at selection, not in a shard
    records = state["accepted"] + state["rejected"]
    judged = [sum(was_judged(r) for r in records if r["iteration"] < it) for it in range(3)]
    assert judged[0] == 0 < judged[1] < judged[2]
    assert learner.calls == [(len(seeds.examples), n) for n in judged]  # the real seeds and every earlier candidate
    assert [s["learned"]["learner"]["generated"] for s in state["stats"]] == judged
    assert [r["iteration"] for r in state["accepted"]] == [0] * len(state["accepted"]) and state["accepted"]
    later = [r["reason"] for r in state["rejected"] if r["iteration"] > 0 and was_judged(r)]
    assert later and all(reason == "dropped by learner" for reason in later)


async def test_tune_steps_tune_the_generator_on_the_winners_so_far_and_the_next_iteration_writes_with_it():
    ctx = PersonaContext(
        iterations=3, pairs=2, candidates=2, persona_target=2, query_steps=1, few_shot=1, min_turns=3, tune_steps=5
    )
    calls, loaded, released = [], {}, []

    async def tuner(accepted, iteration, settings):
        calls.append((iteration, sorted(r["id"] for r in accepted), settings.tune_steps))
        return f"scripted:tuned-{iteration}", {"rows": len(accepted)}

    def load_generator(spec):
        loaded[spec] = ScriptedChatModel(pipeline_reply)
        return loaded[spec]

    seeds, llm = load_seeds(None), ScriptedChatModel(pipeline_reply)
    critics = load_critics(["toxicity", "tests.persona_fakes:brevity"])
    graph = build_graph(llm, critics, tuner=tuner, load_generator=load_generator, release_generator=released.append)
    state = await graph.ainvoke({"seed_attributes": seeds.attributes, "seed_examples": seeds.examples}, context=ctx)
    won = [sorted(r["id"] for r in state["accepted"] if r["iteration"] < it) for it in (1, 2)]
    assert won[0] and len(won[1]) > len(won[0])
    assert calls == [(1, won[0], 5), (2, won[1], 5)]  # after iterations 1 and 2, on every winner so far
    assert state["tuned"] == [{"after_iteration": 1, "rows": len(won[0])}, {"after_iteration": 2, "rows": len(won[1])}]

    def writes(model):
        return sum("Now write a new conversation" in m[-1].content for m in model.requests)

    assert writes(llm) == 2 and [writes(loaded[f"scripted:tuned-{k}"]) for k in (1, 2)] == [2, 2]
    assert {r["iteration"] for r in state["accepted"]} == {0, 1, 2}
    assert released == ["scripted:tuned-1"]  # let go once the second tuning replaced it; the run's own stays

    calls.clear()
    await graph.ainvoke(
        {"seed_attributes": seeds.attributes, "seed_examples": seeds.examples}, context=replace(ctx, tune_steps=0)
    )
    assert calls == []  # off: the paper's loop
