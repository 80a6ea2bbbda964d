"""The recommender graph with scripted answers on the shipped sample catalogue (real MiniLM)."""

from __future__ import annotations

import pytest

from convoforge.agents.recommender.agent import RecommenderAgent, build_retriever
from convoforge.llm.scripted import ScriptedChatModel
from tests.rec_fakes import broken_reply, recommender_reply
from tests.test_catalog import SAMPLE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def retriever():
    return build_retriever(SAMPLE)


async def test_recommend_turn_uses_manager_retrieval_and_ranker(retriever):
    agent = RecommenderAgent(ScriptedChatModel(recommender_reply), retriever)
    state = await agent.chat("s1", "I want something scary, a horror film in a creepy hotel")
    assert state["decision"]["action"] == "recommend"
    recs = state["recommendations"]
    assert recs[0]["name"] == "The Shining (1980)" and recs[0]["fit"] == "excellent fit"
    assert recs[0]["ranker_explanation"] == "A chilling haunted-hotel classic."
    assert "You asked for horror, and it is one." in recs[0]["explanation"]  # grounded in the user's words
    assert "The Shining (1980)" in state["reply"] and state["preferences"]["constraints"] == ["horror"]
    assert {"id", "name", "year", "genre", "score", "fit", "explanation"} <= set(recs[0])


async def test_ask_action_and_shown_items_are_not_repeated(retriever):
    agent = RecommenderAgent(ScriptedChatModel(recommender_reply), retriever)
    first = await agent.chat("s2", "hello")
    assert first["decision"]["action"] == "ask" and first["reply"] == "Hi! What genre do you like?"
    second = await agent.chat("s2", "a horror film please")
    third = await agent.chat("s2", "more horror please")
    shown_before = {r["id"] for r in second["recommendations"][:3]}
    assert not shown_before & {r["id"] for r in third["recommendations"]}


async def test_unusable_llm_answers_fall_back_to_rules_and_metadata(retriever):
    agent = RecommenderAgent(ScriptedChatModel(broken_reply), retriever)
    state = await agent.chat("s3", "I loved Toy Story (1995), something for kids")
    assert state["decision"]["reasoning"].startswith("rules")
    assert "Toy Story (1995)" in state["preferences"]["liked"]
    recs = state["recommendations"]
    assert all(r["id"] != "m02" for r in recs)  # a mentioned item is not recommended back
    assert recs[0]["fit"] == "" and "film" in recs[0]["explanation"]  # from the item and the user's words
    why = await agent.chat("s3", "why would I like the first one?")
    assert why["decision"]["action"] == "explain"
    greeting = await agent.chat("s4", "hi")
    assert greeting["decision"]["action"] == "ask"


async def test_negative_feedback_rejects_and_profile_persists_across_sessions(retriever):
    agent = RecommenderAgent(ScriptedChatModel(broken_reply), retriever)
    first = await agent.chat("s5", "something with dinosaurs", user_id="u1")
    rejected = {r["id"] for r in first["recommendations"][:3]}
    second = await agent.chat("s5", "no, I don't like those", user_id="u1")
    assert rejected <= set(second["rejected"])
    assert not rejected & {r["id"] for r in second["recommendations"]}
    await agent.chat("s6", "I loved Alien (1979)", user_id="u2")
    later = await agent.chat("s7", "anything tonight?", user_id="u2")  # a new session of the same user
    assert "Alien (1979)" in later["profile"]


async def test_without_llm_it_is_retrieval_and_rules(retriever):
    llm = ScriptedChatModel(recommender_reply)
    agent = RecommenderAgent(llm, retriever, use_llm=False)
    state = await agent.chat("s8", "a romantic film set in Paris")
    assert llm.requests == [] and state["recommendations"]
    assert await agent.recommend(["I want a space movie like The Martian (2015)"], k=5)


async def test_each_history_of_the_whole_agent_is_its_own_user(retriever):
    """`eval crs --agent`: one history's preferences never become the next history's profile."""
    agent = RecommenderAgent(ScriptedChatModel(broken_reply), retriever, use_llm=False)
    await agent.recommend_via_graph(["I loved Alien (1979), more horror please"], k=5)
    seen: list[str] = []
    graph = agent.graph

    class Spy:
        async def ainvoke(self, state, config, context):
            out = await graph.ainvoke(state, config, context=context)
            seen.append(out.get("profile") or "")
            return out

    agent.graph = Spy()
    assert await agent.recommend_via_graph(["a romantic film set in Paris"], k=5)
    assert seen == [""]  # the first history's "Alien (1979)" and "horror" are not remembered here
