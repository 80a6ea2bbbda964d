"""Retrieval with the real MiniLM on (part of) the ReDial catalogue and real ReDial turns."""

from __future__ import annotations

import json
import random

import pytest

from convoforge.agents.recommender.agent import RecommenderAgent, build_retriever
from convoforge.datasets.catalog import load_catalog
from convoforge.llm.scripted import ScriptedChatModel
from convoforge.simulators.evaluate_crs import evaluate, load_turns

pytestmark = [pytest.mark.slow, pytest.mark.data]


async def test_redial_subcatalogue_retrieval(data_dir, tmp_path):
    full = json.loads((data_dir / "redial" / "id2info.json").read_text())
    catalog = load_catalog(data_dir / "redial" / "id2info.json")
    turns = load_turns(data_dir / "redial" / "valid_turns.jsonl", catalog, limit=40)
    keep = {t for turn in turns for t in turn["targets"]}
    keep |= {it.id for turn in turns for it in catalog.mentioned(" ".join(turn["context"]))}
    keep |= set(random.Random(0).sample(sorted(full), 600))
    path = tmp_path / "redial_part.json"
    path.write_text(json.dumps({k: full[k] for k in sorted(keep)}))  # ~700 real items: ~30 s of MiniLM
    agent = RecommenderAgent(ScriptedChatModel(["{}"]), build_retriever(path), use_llm=False)
    part = agent.retriever.catalog
    assert len(part) == len(keep)
    first = turns[0]
    mentioned = agent.retriever.mentioned(" ".join(first["context"]))
    assert [it.name for it in mentioned] == ["The Babadook (2014)"]  # "... like The Babadook (2014)"
    ranked = await agent.recommend([c for c in first["context"] if c], k=50)
    assert mentioned[0].id not in ranked and len(ranked) == 50

    def is_horror(item_id: str) -> bool:
        return "horror" in part.by_id[item_id].fields.get("genre", "")

    base_rate = sum(is_horror(it.id) for it in part.items) / len(part)
    top_share = sum(is_horror(i) for i in ranked[:10]) / 10
    assert top_share >= 2 * base_rate, (top_share, base_rate)  # a horror request pulls horror films up
    report = await evaluate(agent, part, turns, [10, 50], "original")
    chance = 50 / len(part)
    assert report["recall@50"] > 2 * chance, report  # well above random on ~700 items
