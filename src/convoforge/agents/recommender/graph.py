"""The RecLLM-style recommender as a LangGraph state machine."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any, Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from pydantic import BaseModel, Field, StringConstraints

from convoforge.agents.recommender import prompts
from convoforge.agents.recommender.context import RecContext
from convoforge.agents.recommender.retrieval import Retriever
from convoforge.agents.recommender.state import RecState
from convoforge.datasets.catalog import Item
from convoforge.llm import GenParams, astructured
from convoforge.llm.base import ChatModel

Action = Literal["ask", "recommend", "explain", "answer", "chitchat"]
FIT_SCORES = {"excellent fit": 1.0, "good fit": 0.75, "fair fit": 0.5, "poor fit": 0.0}
JUDGE = GenParams(temperature=0.0, max_tokens=160)
MANAGER_PARAMS = GenParams(temperature=0.0, max_tokens=320)  # room for the bounded Decision below
_NEGATIVE = re.compile(r"\b(no|not|don't|dont|didn't|hate|seen (it|that)|already seen|boring|dislike)\b", re.I)
_WHY = re.compile(r"\b(why|explain|what makes|tell me more)\b", re.I)


Phrase = Annotated[str, StringConstraints(max_length=40)]


class Decision(BaseModel):
    """The dialogue manager's structured output for one turn."""

    action: Action = "recommend"
    reasoning: str = ""
    liked: list[str] = Field(default_factory=list)
    disliked: list[str] = Field(default_factory=list)
    constraints: list[str] = Field(default_factory=list)
    concepts: list[str] = Field(default_factory=list)
    titles: list[str] = Field(default_factory=list)
    response: str = ""


class DecisionAnswer(Decision):
    """What the LLM is asked for: a Decision with bounds, so a constrained answer fits its tokens."""

    reasoning: str = Field("", max_length=160)
    liked: list[Phrase] = Field(default_factory=list, max_length=3)
    disliked: list[Phrase] = Field(default_factory=list, max_length=3)
    constraints: list[Phrase] = Field(default_factory=list, max_length=3)
    concepts: list[Phrase] = Field(default_factory=list, max_length=3)
    titles: list[Phrase] = Field(default_factory=list, max_length=3)
    response: str = Field("", max_length=200)


class Fit(BaseModel):
    """The ranker's bucketed judgement of one item."""

    fit: Literal["excellent fit", "good fit", "fair fit", "poor fit"]
    explanation: str = Field("", max_length=200)


def rule_decision(user_text: str, has_recs: bool, mentioned: list[Item]) -> Decision:
    """What the manager does when the LLM's answer is unusable: simple, predictable rules."""
    if has_recs and _WHY.search(user_text):
        return Decision(action="explain", reasoning="rules: the user asks why")
    words = re.findall(r"\w+", user_text.lower())
    if len(words) <= 3 and not mentioned and set(words) <= {"hi", "hello", "hey", "there", "thanks", "ok"}:
        return Decision(action="ask", reasoning="rules: greeting", response=prompts.FALLBACK_QUESTION)
    return Decision(action="recommend", reasoning="rules: a request or preference", concepts=[user_text])


def item_card(item: Item, score: float, fit: str = "", explanation: str = "") -> dict:
    """What the app and the dataset keep about a recommended item."""
    return {
        "id": item.id,
        "name": item.name,
        "year": item.year,
        "genre": item.fields.get("genre", ""),
        "score": round(score, 5),
        "fit": fit,
        "explanation": explanation or metadata_explanation(item),
    }


def metadata_explanation(item: Item) -> str:
    """An explanation built from metadata alone (when the ranker's answer is unusable)."""
    bits = [f"a {item.fields['genre']} film" if item.fields.get("genre") else "a film"]
    if item.fields.get("director"):
        bits.append(f"directed by {item.fields['director'].split(',')[0]}")
    if item.fields.get("star"):
        bits.append(f"starring {', '.join(item.fields['star'].split(', ')[:2])}")
    text = " ".join(bits)
    return text[0].upper() + text[1:] + "."


def _transcript(messages: list[dict], last: int = 8) -> str:
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages[-last:])


def build_graph(llm: ChatModel, retriever: Retriever, checkpointer: Any = None, store: Any = None):
    """Compile the recommender: manager -> (retrieve -> rank) -> respond -> remember."""
    catalog = retriever.catalog

    async def load_profile(state: RecState, runtime: Runtime[RecContext]) -> dict:
        if state.get("profile") or runtime.store is None:
            return {}
        found = await runtime.store.aget(("profiles", runtime.context.user_id), "profile")
        return {"profile": found.value["text"]} if found else {}

    async def manage(state: RecState, runtime: Runtime[RecContext]) -> dict:
        messages = state["messages"]
        user_text = messages[-1]["content"]
        mentioned = retriever.mentioned(user_text)
        decision = None
        if runtime.context.use_llm:
            prompt = prompts.MANAGER.format(profile=state.get("profile") or "none", conversation=_transcript(messages))
            result = await astructured(llm, prompt, DecisionAnswer, MANAGER_PARAMS, retries=1)
            decision = Decision(**result.value.model_dump()) if result.ok else None
        decision = decision or rule_decision(user_text, bool(state.get("recommendations")), mentioned)
        prefs = dict(state.get("preferences") or {})
        negative = bool(_NEGATIVE.search(user_text))
        liked = [*prefs.get("liked", []), *decision.liked, *([] if negative else [it.name for it in mentioned])]
        disliked = [
            *prefs.get("disliked", []),
            *decision.disliked,
            *([it.name for it in mentioned] if negative else []),
        ]
        prefs = {
            "liked": list(dict.fromkeys(liked)),
            "disliked": list(dict.fromkeys(disliked)),
            "constraints": list(dict.fromkeys([*prefs.get("constraints", []), *decision.constraints])),
        }
        rejected = list(state.get("rejected", []))
        if negative and state.get("recommendations"):
            rejected += [r["id"] for r in state["recommendations"]]
        return {"decision": decision.model_dump(), "preferences": prefs, "rejected": rejected}

    def route(state: RecState) -> str:
        action = state["decision"]["action"]
        if action == "recommend" or (action == "explain" and not state.get("recommendations")):
            return "retrieve"
        return "respond"

    def retrieve(state: RecState, runtime: Runtime[RecContext]) -> dict:
        decision, prefs = state["decision"], state["preferences"]
        user_turns = [m["content"] for m in state["messages"] if m["role"] == "user"][-2:]
        liked = [it for name in prefs.get("liked", []) if (it := catalog.find(name))]
        context = user_turns + prefs.get("constraints", [])
        exclude = set(state.get("shown", [])) | set(state.get("rejected", [])) | {it.id for it in liked}
        exclude |= {it.id for name in prefs.get("disliked", []) if (it := catalog.find(name))}
        found = retriever.retrieve(
            context,
            liked,
            decision.get("concepts", []),
            decision.get("titles", []),
            state.get("profile", ""),
            exclude,
            k=runtime.context.k,
        )
        return {"candidates": [item_card(item, score) for item, score in found]}

    async def rank(state: RecState, runtime: Runtime[RecContext]) -> dict:
        ctx, candidates = runtime.context, state["candidates"]
        top, rest = candidates[: ctx.rank_top], candidates[ctx.rank_top :]
        if not ctx.use_llm or not top:
            return {"recommendations": candidates}
        prefs = state["preferences"]
        summary = "; ".join(f"{k}: {', '.join(v)}" for k, v in prefs.items() if v) or state["messages"][-1]["content"]
        if state.get("profile"):
            summary += f" (profile: {state['profile']})"
        answers = await asyncio.gather(
            *[
                astructured(
                    llm,
                    prompts.RANKER.format(preferences=summary, item=catalog.by_id[c["id"]].text()),
                    Fit,
                    JUDGE,
                    retries=0,
                )
                for c in top
            ]
        )
        ranked = []
        for card, answer in zip(top, answers, strict=True):
            if answer.ok:
                card = {**card, "fit": answer.value.fit, "explanation": answer.value.explanation or card["explanation"]}
            ranked.append(card)
        ranked.sort(key=lambda c: -FIT_SCORES.get(c["fit"], 0.5))  # stable: ties keep retrieval order
        return {"recommendations": ranked + rest}

    def respond(state: RecState, runtime: Runtime[RecContext]) -> dict:
        decision = state["decision"]
        recs = state.get("recommendations") or []
        show = recs[: runtime.context.show]
        if decision["action"] in {"recommend", "explain"} and show:
            lines = [prompts.RECOMMEND_INTRO] + [f"{i}. {c['name']}: {c['explanation']}" for i, c in enumerate(show, 1)]
            reply = "\n".join(lines)
            shown = list(dict.fromkeys([*state.get("shown", []), *(c["id"] for c in show)]))
        else:
            reply = decision.get("response") or prompts.FALLBACK_QUESTION
            shown = state.get("shown", [])
        return {"reply": reply, "shown": shown, "messages": [{"role": "assistant", "content": reply}]}

    async def remember(state: RecState, runtime: Runtime[RecContext]) -> dict:
        if runtime.store is None:
            return {}
        prefs = state.get("preferences") or {}
        if not any(prefs.values()):
            return {}
        memory = prompts.MEMORY.format(
            **{k: ", ".join(prefs.get(k, [])) or "nothing yet" for k in ("liked", "disliked", "constraints")}
        )
        await runtime.store.aput(("profiles", runtime.context.user_id), "memory", {"text": memory, **prefs})
        found = await runtime.store.aget(("profiles", runtime.context.user_id), "profile")
        base = found.value.get("history", "") if found else ""
        text = f"{base} {memory}".strip()
        await runtime.store.aput(("profiles", runtime.context.user_id), "profile", {"text": text, "history": base})
        return {}

    graph = StateGraph(RecState, context_schema=RecContext)
    for name, fn in [
        ("load_profile", load_profile),
        ("manage", manage),
        ("retrieve", retrieve),
        ("rank", rank),
        ("respond", respond),
        ("remember", remember),
    ]:
        graph.add_node(name, fn)
    graph.add_edge(START, "load_profile")
    graph.add_edge("load_profile", "manage")
    graph.add_conditional_edges("manage", route, ["retrieve", "respond"])
    graph.add_edge("retrieve", "rank")
    graph.add_edge("rank", "respond")
    graph.add_edge("respond", "remember")
    graph.add_edge("remember", END)
    return graph.compile(checkpointer=checkpointer, store=store)
