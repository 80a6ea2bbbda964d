"""Browse generated persona datasets: accepted/rejected conversations, verdicts, score plots."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from convoforge.datasets.records import read_dataset
from convoforge.errors import ConvoforgeError

st.set_page_config(page_title="convoforge datasets", page_icon="📚", layout="wide")
st.title("Generated datasets")

path = st.text_input("Dataset folder (written by `convoforge generate personas`)", "out/personas")
try:
    data = read_dataset(path)
except ConvoforgeError as exc:
    st.info(str(exc))
    st.stop()

split = st.radio("Split", list(data), horizontal=True)
rows = list(data[split])
st.caption(f"{len(rows)} conversations")
if not rows:
    st.stop()

scores = pd.DataFrame(
    [
        {"iteration": r.get("iteration", 0), "critic": v["critic"], "score": v["score"]}
        for r in rows
        for v in r.get("verdicts", [])
        if v["valid"] and v["score"] is not None
    ]
)
if not scores.empty:
    st.subheader("Mean critic score per iteration")
    st.line_chart(scores.groupby(["iteration", "critic"])["score"].mean().unstack("critic"))
    st.subheader("Score distribution")
    critic = st.selectbox("Critic", sorted(scores["critic"].unique()))
    st.bar_chart(scores[scores["critic"] == critic]["score"].round(2).value_counts().sort_index())

index = st.number_input("Conversation", min_value=0, max_value=len(rows) - 1, value=0)
row = rows[int(index)]
left, right = st.columns([3, 2])
with left:
    st.markdown(f"**{row['id']}** (iteration {row.get('iteration', 0)}) {row.get('reason', '')}")
    for m in row["messages"]:
        st.markdown(f"**{m['speaker']}:** {m['content']}")
    if not row["messages"]:
        st.code(row.get("raw", ""))
with right:
    st.markdown("**Profiles**")
    st.json(row["profiles"])
    st.markdown("**Verdicts**")
    st.dataframe(pd.DataFrame(row["verdicts"])[["critic", "valid", "score", "passed", "label", "rationale"]])
