"""The RecLLM-style recommender as a LangGraph state machine."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from typing import Annotated, Any, Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from pydantic import BaseModel, Field, StringConstraints

from convoforge.agents.recommender import prompts
from convoforge.agents.recommender.context import RecContext
from convoforge.agents.recommender.requests import Request, apply_request, explain, latest_year, parse_request
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


_CLAUSE = re.compile(r"(?<=\(\d{4}\))|(?<=\.)\s+(?=[A-Z])|[!?;]|\bbut\b")  # after `Title (Year)`, . ! ? ; but
# a negative word that says nothing against the film: not seen yet, no preference, unsure
_NOT_AGAINST = re.compile(
    r"\b(?:(?:have|has|had)(?:n't| not)|not|never|didn't|did not) (?:yet )?(?:seen|watched)\b"
    r"|\b(?:don'?t|do not) (?:care|mind)\b|\bnot sure\b|\bno (?:preference|problem)\b",
    re.I,
)


def disliked_films(text: str, mentioned) -> set[str]:
    """Ids of the films named in a clause with a negative word; the others in the message stay liked.

    "I haven't seen X (2016)" or "I don't care about the genre, maybe X (1997)" is not against X.
    """
    return {
        it.id
        for clause in _CLAUSE.split(text)
        if _NEGATIVE.search(_NOT_AGAINST.sub(" ", clause))
        for it in mentioned(clause)
    }


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


def rule_decision(
    user_text: str, has_recs: bool, mentioned: list[Item], req: Request | None = None, opening: bool = True
) -> Decision:
    """What the manager does when the LLM's answer is unusable: simple, predictable rules.

    A greeting that opens the conversation gets a question; later, "ok" or "thanks" goes on recommending.
    """
    req = req or Request()
    if has_recs and req.why:
        return Decision(action="explain", reasoning="rules: the user asks why")
    if has_recs and (req.seen or req.not_that):
        return Decision(action="recommend", reasoning="rules: the user turns down what was shown")
    words = re.findall(r"\w+", user_text.lower())
    if opening and len(words) <= 3 and not mentioned and set(words) <= {"hi", "hello", "hey", "there", "thanks", "ok"}:
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
        "explanation": explanation or explain(item, []),
    }


def merge_requests(old: dict | None, new: Request) -> Request:
    """The standing constraints after one more message: new genre, year and people wishes add to the old."""
    merged = Request(**old) if old else Request()
    merged.want_genres = [
        g for g in dict.fromkeys([*merged.want_genres, *new.want_genres]) if g not in new.avoid_genres + new.less_genres
    ]
    merged.avoid_genres = list(dict.fromkeys([*merged.avoid_genres, *new.avoid_genres]))
    merged.less_genres = list(dict.fromkeys([*merged.less_genres, *new.less_genres]))
    merged.year_min = new.year_min if new.year_min is not None else merged.year_min
    merged.year_max = new.year_max if new.year_max is not None else merged.year_max
    merged.people = list(dict.fromkeys([*merged.people, *new.people]))
    merged.ordinal, merged.seen, merged.not_that, merged.why = new.ordinal, new.seen, new.not_that, new.why
    return merged


def shown_index(req: Request, shown: int) -> int:
    """Which of the shown cards a message means: its ordinal ("the first one", "the last one"), else the first."""
    if req.ordinal is None:
        return 0
    return max(0, min(shown - 1, req.ordinal if req.ordinal >= 0 else shown - 1))


def _transcript(messages: list[dict], last: int = 8) -> str:
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages[-last:])


def build_graph(llm: ChatModel, retriever: Retriever, checkpointer: Any = None, store: Any = None):
    """Compile the recommender: manager -> (retrieve -> rank) -> respond -> remember."""
    catalog = retriever.catalog
    newest = latest_year(catalog)

    async def load_profile(state: RecState, runtime: Runtime[RecContext]) -> dict:
        if state.get("profile") or runtime.store is None:
            return {}
        found = await runtime.store.aget(("profiles", runtime.context.user_id), "profile")
        return {"profile": found.value["text"]} if found else {}

    async def manage(state: RecState, runtime: Runtime[RecContext]) -> dict:
        messages = state["messages"]
        user_text = messages[-1]["content"]
        mentioned = retriever.mentioned(user_text)
        # a thread's first turn may carry a history (eval crs --agent): the films named before count as liked
        earlier = (
            retriever.mentioned(" ".join(m["content"] for m in messages[:-1])) if not state.get("preferences") else []
        )
        decision = None
        if runtime.context.use_llm and runtime.context.llm_manager:
            prompt = prompts.MANAGER.format(profile=state.get("profile") or "none", conversation=_transcript(messages))
            result = await astructured(llm, prompt, DecisionAnswer, MANAGER_PARAMS, retries=1)
            decision = Decision(**result.value.model_dump()) if result.ok else None
        req = parse_request(user_text, catalog, newest)
        opening = not any(m["role"] == "user" for m in messages[:-1])
        decision = decision or rule_decision(user_text, bool(state.get("recommendations")), mentioned, req, opening)
        prefs = dict(state.get("preferences") or {})
        negative = bool(_NEGATIVE.search(user_text)) or req.seen or req.not_that
        against = disliked_films(user_text, retriever.mentioned)  # "I didn't like X (2001) but loved Y (2003)"
        liked = [
            *prefs.get("liked", []),
            *[it.name for it in earlier if it not in mentioned],
            *decision.liked,
            *[it.name for it in mentioned if it.id not in against],
        ]
        disliked = [
            *prefs.get("disliked", []),
            *decision.disliked,
            *[it.name for it in mentioned if it.id in against],
        ]
        prefs = {
            "liked": list(dict.fromkeys(liked)),
            "disliked": list(dict.fromkeys(disliked)),
            "constraints": list(
                dict.fromkeys([*prefs.get("constraints", []), *decision.constraints, *req.constraints()])
            ),
        }
        rejected = list(state.get("rejected", []))
        last = (state.get("recommendations") or [])[: runtime.context.show]
        if negative and last and decision.action != "explain":
            # "I've seen the second one" turns down that card; a plain "seen it" / "not those", all shown
            rejected += (
                [last[shown_index(req, len(last))]["id"]] if req.ordinal is not None else [r["id"] for r in last]
            )
        request = merge_requests(state.get("request"), req)
        has_recs = bool(state.get("recommendations"))
        path = (
            "retrieve"
            if decision.action == "recommend" or (decision.action == "explain" and not has_recs)
            else "respond"
        )
        return {
            "route": path,
            "focus": [],
            "decision": decision.model_dump(),
            "preferences": prefs,
            "rejected": rejected,
            "request": request.__dict__,
        }

    def route(state: RecState) -> str:
        return state["route"]

    def retrieve(state: RecState, runtime: Runtime[RecContext]) -> dict:
        decision, prefs = state["decision"], state["preferences"]
        user_turns = [m["content"] for m in state["messages"] if m["role"] == "user"][-2:]
        liked = [it for name in prefs.get("liked", []) if (it := catalog.find(name))]
        context = user_turns + prefs.get("constraints", [])
        concepts = decision.get("concepts", [])
        req = Request(**state["request"]) if state.get("request") else Request()
        order = req
        if retriever.learned is not None:
            # the learned ranker reads a conversation as it was trained: every utterance but this agent's own
            # lists, genre words included; a concept that only repeats a message adds nothing
            context = [m["content"] for m in state["messages"] if not m.get("agent")]
            concepts = [c for c in concepts if c not in context]
            order = dataclasses.replace(req, want_genres=[])  # its genre features already weigh them
        exclude = set(state.get("shown", [])) | set(state.get("rejected", [])) | {it.id for it in liked}
        exclude |= {it.id for name in prefs.get("disliked", []) if (it := catalog.find(name))}
        found = retriever.retrieve(
            context,
            liked,
            concepts,
            decision.get("titles", []),
            state.get("profile", ""),
            exclude,
            k=max(4 * runtime.context.k, 200),
        )
        scores = {item.id: score for item, score in found}
        kept = apply_request([item for item, _ in found], order)[: runtime.context.k]
        return {"candidates": [item_card(it, scores[it.id], explanation=explain(it, liked, req)) for it in kept]}

    async def rank(state: RecState, runtime: Runtime[RecContext]) -> dict:
        ctx, candidates = runtime.context, state["candidates"]
        top, rest = candidates[: ctx.rank_top], candidates[ctx.rank_top :]
        if not ctx.use_llm or not ctx.llm_ranker or not top:
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
            if answer.ok:  # the card keeps its grounded explanation; the ranker's own words ride along
                card = {**card, "fit": answer.value.fit, "ranker_explanation": answer.value.explanation}
            ranked.append(card)
        ranked.sort(key=lambda c: -FIT_SCORES.get(c["fit"], 0.5))  # stable: ties keep retrieval order
        return {"recommendations": ranked + rest}

    def respond(state: RecState, runtime: Runtime[RecContext]) -> dict:
        decision = state["decision"]
        recs = state.get("recommendations") or []
        show = recs[: runtime.context.show]
        if decision["action"] == "explain" and show and state.get("route") == "respond":
            req = Request(**state["request"]) if state.get("request") else Request()
            card = show[shown_index(req, len(show))]
            reply = f"{card['name']}: {card['explanation']}"
            said = {"role": "assistant", "content": reply, "agent": True}
            return {"reply": reply, "focus": [card], "messages": [said]}
        if decision["action"] in {"recommend", "explain"} and show:
            lines = [prompts.RECOMMEND_INTRO] + [f"{i}. {c['name']}: {c['explanation']}" for i, c in enumerate(show, 1)]
            reply = "\n".join(lines)
            shown = list(dict.fromkeys([*state.get("shown", []), *(c["id"] for c in show)]))
        else:
            reply = decision.get("response") or prompts.FALLBACK_QUESTION
            shown = state.get("shown", [])
        return {"reply": reply, "shown": shown, "messages": [{"role": "assistant", "content": reply, "agent": True}]}

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
