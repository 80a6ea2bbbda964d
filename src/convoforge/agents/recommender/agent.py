"""The recommender behind the simulation protocol and the chat doors (CLI, Streamlit)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from convoforge.agents.recommender.context import RecContext
from convoforge.agents.recommender.fusion import load_in_domain
from convoforge.agents.recommender.graph import build_graph
from convoforge.agents.recommender.requests import Request, apply_request, parse_request
from convoforge.agents.recommender.retrieval import Retriever, movielens_popularity
from convoforge.datasets.catalog import load_catalog
from convoforge.llm.base import ChatModel
from convoforge.llm.embeddings import load_embedder
from convoforge.llm.local import is_embedded_spec


@dataclass
class AgentRecipe:
    """Everything that builds a recommender and its LLM: picklable, so Ray workers build their own."""

    catalog: str
    popularity: str | None = None
    embedder: str | None = None
    train: list[str] = field(default_factory=list)
    model: str = "local:smollm2-135m"
    base_url: str | None = None
    use_llm: bool = False

    def build(self, store: Any = None) -> tuple[RecommenderAgent, ChatModel]:
        """The agent (profiles in `store`, default in memory) and the LLM it (and an LLM simulator) talks to."""
        from convoforge.llm import load_chat_model

        retriever = build_retriever(self.catalog, self.popularity, self.embedder, [Path(t) for t in self.train])
        llm = load_chat_model(self.model, base_url=self.base_url)
        return RecommenderAgent(llm, retriever, store=store, use_llm=self.use_llm), llm


def build_retriever(
    catalog_path: str | Path,
    popularity: str | Path | None = None,
    embedder: str | None = None,
    train: list[Path] | None = None,
):
    """Load a catalogue, its cached item vectors, an optional MovieLens prior and in-domain signals.

    With `train` (ReDial-format dialogues) the learned fusion ranks the candidates; MovieLens
    item-to-item CF joins it when the popularity ratings.csv has links.csv beside it.
    """
    catalog = load_catalog(catalog_path)
    prior = movielens_popularity(Path(popularity), catalog) if popularity else None
    retriever = Retriever(catalog, load_embedder(embedder) if embedder else load_embedder(), prior)
    if train:
        folder = Path(popularity).parent if popularity else None
        movielens = folder if folder is not None and (folder / "links.csv").is_file() else None
        retriever.learned = load_in_domain(retriever, [Path(p) for p in train], movielens)
    return retriever


class GraphRecommender:
    """The recommendation protocol of `evaluate` answered by the whole graph rather than retrieval alone."""

    def __init__(self, agent: RecommenderAgent) -> None:
        self.agent, self.retriever = agent, agent.retriever

    async def recommend(self, context: list[str], k: int = 50, exclude: set[str] | None = None) -> list[str]:
        """Item ids the whole agent recommends for a history."""
        return await self.agent.recommend_via_graph(context, k, exclude)

    def warm(self, contexts: list[list[str]]) -> None:
        """Embed the query texts in one batch."""
        self.agent.warm(contexts)


def llm_roles(llm: ChatModel | None) -> dict[str, bool]:
    """Which parts a model plays by default: measured on ReDial valid turns (README Results).

    The embedded SmolLM2-135M's manager answers "ask" with empty fields on every recommendation turn
    (recall 0), and its ranker's reordering of the top five lowered Recall@1 (.030 vs .061 on 50 turns),
    so on it the rules decide the action and the retrieval order stays.
    """
    embedded = is_embedded_spec(getattr(llm, "name", "") or "")
    return {"llm_manager": not embedded, "llm_ranker": not embedded}


class RecommenderAgent:
    """One compiled graph; a thread per session (checkpointer), a profile per user (store)."""

    def __init__(
        self,
        llm: ChatModel,
        retriever: Retriever,
        store: Any = None,
        use_llm: bool = True,
        k: int = 50,
        roles: dict[str, bool] | None = None,
    ) -> None:
        self.retriever = retriever
        self.store = store if store is not None else InMemoryStore()
        self.graph = build_graph(llm, retriever, checkpointer=InMemorySaver(), store=self.store)
        self.use_llm, self.k = use_llm, k
        self.roles = {**llm_roles(llm), **(roles or {})}  # llm_manager, llm_ranker

    def settings(self, **overrides: Any) -> RecContext:
        """The run-time context of one call: this agent's LLM switches and roles."""
        return RecContext(use_llm=self.use_llm, **{"k": self.k, **self.roles, **overrides})

    async def chat(self, session_id: str, text: str, user_id: str = "anonymous") -> dict:
        """Send one user message in a session; returns the new state (reply, recommendations, preferences)."""
        config = {"configurable": {"thread_id": session_id}}
        context = self.settings(user_id=user_id)
        return await self.graph.ainvoke({"messages": [{"role": "user", "content": text}]}, config, context=context)

    async def respond(self, session_id: str, messages: list[dict]) -> dict:
        """The simulation protocol: answer the latest user message of the session.

        Each session is its own user: a simulated user never inherits another session's remembered profile.
        """
        state = await self.chat(session_id, messages[-1]["content"], user_id=session_id)
        recs = state.get("recommendations") or []
        return {"content": state["reply"], "items": [r["id"] for r in recs], "names": [r["name"] for r in recs]}

    async def recommend(self, context: list[str], k: int = 50, exclude: set[str] | None = None) -> list[str]:
        """Item ids for a dialogue history; mentioned items count as liked, except those shown and turned down.

        A user asking "why would X suit me?" about a film that was shown names it without liking it.
        """
        shown = set(exclude or ())
        liked = [it for it in self.retriever.mentioned(" ".join(context)) if it.id not in shown]
        exclude = {it.id for it in liked} | shown
        said = [c for c in context if c]
        # the learned ranker embeds the last two utterances itself and reads the whole history's genre words
        said = said if self.retriever.learned is not None else said[-2:]
        # the people the latest message names come first, as in chat ("a comedy with Will Ferrell.")
        named = parse_request(said[-1], self.retriever.catalog).people if said else []
        found = self.retriever.retrieve(said, liked, [], [], "", exclude, k=max(4 * k, 200) if named else k)
        items = [item for item, _ in found]
        items = apply_request(items, Request(people=named)) if named else items
        return [item.id for item in items[:k]]

    async def recommend_via_graph(self, context: list[str], k: int = 50, exclude: set[str] | None = None) -> list[str]:
        """The whole agent on a history: manager, retrieval and ranker in a fresh thread (`eval crs --agent`).

        Utterances alternate roles backwards from the last one, the user's; a turn the manager answers
        without recommending returns no items, as the agent would. Each history is its own user, so no
        remembered profile carries from one history to the next.
        """
        said = [c for c in context if c]
        messages = [
            {"role": "user" if (len(said) - 1 - i) % 2 == 0 else "assistant", "content": text}
            for i, text in enumerate(said)
        ]
        thread = uuid.uuid4().hex
        config = {"configurable": {"thread_id": thread}}
        settings = self.settings(k=k, user_id=thread)
        state = await self.graph.ainvoke({"messages": messages, "shown": list(exclude or ())}, config, context=settings)
        return [r["id"] for r in state.get("recommendations") or []]

    def warm(self, contexts: list[list[str]]) -> None:
        """Embed the query texts of many histories in one batch (the embedding cache then answers each turn)."""
        texts = [t for c in contexts for t in [u for u in c if u.strip()][-2:]]
        if texts:
            self.retriever.embedder.embed_query(texts)

    async def set_profile(self, user_id: str, text: str) -> None:
        """Store a natural-language profile for a user (e.g. from MovieLens history)."""
        await self.store.aput(("profiles", user_id), "profile", {"text": text, "history": text})
