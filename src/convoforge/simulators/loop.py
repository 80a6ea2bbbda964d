"""The simulation loop: a simulated user and any agent that follows a small protocol, as a LangGraph."""

from __future__ import annotations

import operator
from typing import Annotated, Any, Protocol, TypedDict

from langgraph.graph import END, START, StateGraph

from convoforge.simulators.user import SimulatedUser


class Agent(Protocol):
    """What an agent must offer the loop: answer the conversation so far."""

    async def respond(self, session_id: str, messages: list[dict]) -> dict:
        """Return {"content": str, "items": [item ids, best first], "names": [their names]}."""
        ...


class SessionState(TypedDict, total=False):
    """One simulated session."""

    session_id: str
    messages: Annotated[list[dict], operator.add]
    turn: int
    recommended: list[str]
    rec_names: list[str]
    outcome: str
    hit_turn: int


def build_loop(user: SimulatedUser, agent: Agent, max_turns: int = 10, hit_k: int = 3):
    """User -> agent -> user ... until the user accepts or leaves, or max_turns."""

    async def user_turn(state: SessionState) -> dict:
        message = await user.utter(
            state.get("turn", 0),
            state.get("messages", []),
            state.get("recommended", [])[:hit_k],
            state.get("rec_names", [])[:hit_k],
        )
        update: dict[str, Any] = {"messages": [message]}
        if message["intent"] == "accept":
            update |= {"outcome": "accepted", "hit_turn": state.get("turn", 0)}
        elif message["intent"] == "leave":
            update["outcome"] = "left"
        return update

    async def agent_turn(state: SessionState) -> dict:
        history = [{"role": m["role"], "content": m["content"]} for m in state["messages"]]
        reply = await agent.respond(state["session_id"], history)
        return {
            "messages": [{"role": "assistant", "content": reply["content"], "items": reply.get("items", [])[:10]}],
            "recommended": reply.get("items", []),
            "rec_names": reply.get("names", []),
            "turn": state.get("turn", 0) + 1,
        }

    def after_user(state: SessionState) -> str:
        return END if state.get("outcome") else "agent"

    def after_agent(state: SessionState) -> str:
        if state["turn"] >= max_turns:
            return "stop"
        return "user"

    def stop(state: SessionState) -> dict:
        return {"outcome": "max_turns"}

    graph = StateGraph(SessionState)
    graph.add_node("user", user_turn)
    graph.add_node("agent", agent_turn)
    graph.add_node("stop", stop)
    graph.add_edge(START, "user")
    graph.add_conditional_edges("user", after_user, ["agent", END])
    graph.add_conditional_edges("agent", after_agent, ["user", "stop"])
    graph.add_edge("stop", END)
    return graph.compile()
