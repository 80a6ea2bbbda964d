"""The convoforge Streamlit app: chat with the recommender (`convoforge app`)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator

import streamlit as st

from convoforge.agents.recommender.agent import RecommenderAgent, build_retriever
from convoforge.llm import load_chat_model

st.set_page_config(page_title="convoforge recommender", page_icon="🎬", layout="wide")


@st.cache_resource(show_spinner="Loading the catalogue and its index…")
def retriever_for(catalog: str):
    """One retriever (catalogue, cached vectors, faiss index) per catalogue path."""
    train = [p for p in os.environ.get("CONVOFORGE_TRAIN", "").split(os.pathsep) if p]
    return build_retriever(catalog, embedder=os.environ.get("CONVOFORGE_EMBEDDER") or None, train=train)


@st.cache_resource(show_spinner="Loading the model…")
def agent_for(model: str, catalog: str, use_llm: bool) -> RecommenderAgent:
    """One agent per model, catalogue and mode; sessions are threads inside it."""
    return RecommenderAgent(load_chat_model(model), retriever_for(catalog), use_llm=use_llm)


def words(text: str) -> Iterator[str]:
    """Stream a reply word by word."""
    for piece in text.split(" "):
        yield piece + " "
        time.sleep(0.01)


def card(rec: dict) -> None:
    """A recommendation card: title, year, genres, explanation."""
    with st.container(border=True):
        st.markdown(f"**{rec['name']}**")
        st.caption(" · ".join(x for x in [rec.get("year", ""), rec.get("genre", ""), rec.get("fit", "")] if x))
        st.write(rec["explanation"])
        if rec.get("ranker_explanation"):
            st.caption(f"ranker: {rec['ranker_explanation']}")


with st.sidebar:
    st.header("Settings")
    model = st.text_input("Model", os.environ.get("CONVOFORGE_MODEL", "local:smollm2-135m"))
    catalog = st.text_input("Catalogue", os.environ.get("CONVOFORGE_CATALOG", ""))
    use_llm = st.toggle(
        "LLM manager and ranker",
        value=os.environ.get("CONVOFORGE_APP_LLM", "1") == "1",
        help="On the embedded SmolLM2 the rules decide and the retrieval order stays: its manager and ranker "
        "lowered recall on ReDial (README Results). Other models play both parts.",
    )
    user_id = st.text_input("User id", "anonymous")
    if st.button("Reset conversation"):
        for key in ("session", "turns", "state"):
            st.session_state.pop(key, None)

st.session_state.setdefault("session", uuid.uuid4().hex[:8])
st.session_state.setdefault("turns", [])

st.title("convoforge recommender")
if not catalog:
    st.error("Set a catalogue path in the side panel (or start with `convoforge app --catalog PATH`).")
    st.stop()
agent = agent_for(model, catalog, use_llm)

for turn in st.session_state["turns"]:
    with st.chat_message(turn["role"]):
        st.markdown(turn["content"])
        for rec in turn.get("recs", []):
            card(rec)

if prompt := st.chat_input("What would you like to watch?"):
    st.session_state["turns"].append({"role": "user", "content": prompt})
    with st.chat_message("user"):
        st.markdown(prompt)
    state = asyncio.run(agent.chat(st.session_state["session"], prompt, user_id=user_id))
    if state.get("focus"):  # an answer about one shown card: the explanation and that card
        shown, intro = state["focus"], state["reply"]
    elif state["decision"]["action"] in {"recommend", "explain"}:
        shown = (state.get("recommendations") or [])[:3]
        intro = state["reply"].split("\n")[0] if shown else state["reply"]
    else:
        shown, intro = [], state["reply"]
    with st.chat_message("assistant"):
        st.write_stream(words(intro))
        for rec in shown:
            card(rec)
    st.session_state["turns"].append({"role": "assistant", "content": intro, "recs": shown})
    st.session_state["state"] = state

with st.sidebar:
    state = st.session_state.get("state") or {}
    st.subheader("What I understood")
    st.json(state.get("preferences") or {"liked": [], "disliked": [], "constraints": []})
    st.subheader("Your profile")
    st.write(state.get("profile") or "No profile yet: it grows as you chat.")
    if state.get("decision"):
        st.caption(f"manager action: {state['decision']['action']} ({state['decision'].get('reasoning', '')})")
