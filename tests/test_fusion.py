"""In-domain signals from ReDial-format training dialogues and the learned fusion over them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from convoforge.agents.recommender.signals import MovieLensCF, Signals, redial_turns
from convoforge.datasets.catalog import load_catalog
from convoforge.errors import ConvoforgeError
from tests.test_catalog import SAMPLE


def dialog(cid: str, seeker_says: str, recommender_says: str, mentions: dict[str, str]) -> dict:
    """A two-speaker ReDial dialogue: the respondent (worker 1) recommends."""
    return {
        "conversationId": cid,
        "initiatorWorkerId": 2,
        "respondentWorkerId": 1,
        "movieMentions": mentions,
        "messages": [
            {"senderWorkerId": 1, "text": "Hi! What do you like?"},
            {"senderWorkerId": 2, "text": seeker_says},
            {"senderWorkerId": 2, "text": "Any ideas?"},
            {"senderWorkerId": 1, "text": recommender_says},
        ],
    }


def write(path: Path, dialogs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in dialogs), encoding="utf-8")
    return path


def toy_story_then_notebook(tmp_path: Path, n: int = 40) -> Path:
    """Every seeker who names Toy Story is recommended The Notebook (a pairing no content signal predicts)."""
    return write(
        tmp_path / "train.jsonl",
        [dialog(str(i), "I loved @m02 so much", "Then try @m05 tonight", {}) for i in range(n)],
    )


def test_redial_turns_merge_speakers_name_films_and_keep_ids(tmp_path):
    catalog = load_catalog(SAMPLE)
    path = write(tmp_path / "d.jsonl", [dialog("7", "I loved @m02", "You might like @m05 and @m03", {})])
    [turn] = redial_turns(path, catalog)
    assert turn["context"] == ["Hi! What do you like?", "I loved Toy Story (1995) Any ideas?"]
    assert turn["targets"] == ["m05", "m03"] and turn["seen"] == ["m02"]
    assert turn["rec"] == ["The Notebook (2004)", "The Godfather (1972)"] and turn["dialog_id"] == "7"


def test_redial_turns_reject_other_formats(tmp_path):
    catalog = load_catalog(SAMPLE)
    with pytest.raises(ConvoforgeError, match="not ReDial format"):
        redial_turns(write(tmp_path / "x.jsonl", [{"context": [], "rec": []}]), catalog)
    with pytest.raises(ConvoforgeError, match="no recommender turn"):
        redial_turns(write(tmp_path / "y.jsonl", [dialog("1", "hi", "no films here", {})]), catalog)
    with pytest.raises(ConvoforgeError, match="no training dialogues"):
        redial_turns(tmp_path / "missing.jsonl", catalog)


def test_comention_counts_follow_the_recommender():
    index_of = {"a": 0, "b": 1, "c": 2}
    turns = [
        {"dialog_id": "1", "seen": ["a"], "targets": ["b"]},
        {"dialog_id": "2", "seen": ["a"], "targets": ["b", "c"]},
        {"dialog_id": "3", "seen": [], "targets": ["c"]},
    ]
    sig = Signals.from_turns(turns, 3, index_of)
    assert sig.comention[0, 1] == 2 and sig.comention[0, 2] == 1 and sig.comention[1, 0] == 0
    assert sig.recommended.tolist() == [0, 2, 2]
    scores = sig.scores([0])
    assert scores["comention"][1] > scores["comention"][2] > scores["comention"][0] == 0
    assert sig.cooccur[1, 0] == 2  # named in the same dialogue, either order


def test_movielens_cf_joins_by_imdb_id(tmp_path):
    catalog_path = tmp_path / "cat.json"
    catalog_path.write_text(
        json.dumps({str(i): {"name": f"Film {i} (2000)", "imdb_id": f"tt{i:07d}"} for i in range(1, 5)})
    )
    catalog = load_catalog(catalog_path)
    ml = tmp_path / "ml"
    ml.mkdir()
    (ml / "links.csv").write_text("movieId,imdbId,tmdbId\n10,0000001,1\n20,0000002,2\n30,0000003,3\n")
    (ml / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,10,5,0\n1,20,4.5,0\n2,10,4,0\n2,20,5,0\n3,30,5,0\n3,10,1,0\n"
    )
    cf = MovieLensCF(ml, catalog)
    assert cf.joined == 3
    scores = cf.scores([catalog.index_of["1"]])
    assert scores[catalog.index_of["2"]] > 0.9 and scores[catalog.index_of["3"]] == 0  # user 3 disliked film 1
    with pytest.raises(ConvoforgeError, match="links"):
        MovieLensCF(tmp_path, catalog)


@pytest.mark.slow
async def test_learned_fusion_picks_up_an_in_domain_pairing(tmp_path, monkeypatch):
    from convoforge.agents.recommender.agent import RecommenderAgent, build_retriever

    monkeypatch.setenv("CONVOFORGE_CACHE", str(tmp_path / "cache"))
    train = toy_story_then_notebook(tmp_path)
    plain = RecommenderAgent(None, build_retriever(SAMPLE), use_llm=False)
    tuned = RecommenderAgent(None, build_retriever(SAMPLE, train=[train]), use_llm=False)
    context = ["Hi! What do you like?", "I loved Toy Story (1995) Any ideas?"]
    assert (await tuned.recommend(context, k=5))[0] == "m05"
    assert (await plain.recommend(context, k=5))[0] != "m05"
    cached = list((tmp_path / "cache" / "indexes").glob("fusion-*.skops"))
    assert len(cached) == 1  # learned once, beside the index
    again = build_retriever(SAMPLE, train=[train])
    assert np.allclose(again.learned.signals.recommended, tuned.retriever.learned.signals.recommended)
    other = build_retriever(SAMPLE)
    assert other.learned is None  # without --train: today's fusion


def test_cli_train_path_must_exist(tmp_path):
    from tests.test_cli import cf

    result = cf(
        "eval", "crs", "--turns", str(tmp_path / "t.jsonl"), "--catalog", str(SAMPLE), "--train", str(tmp_path / "n")
    )
    assert result.returncode == 2 and "no training dialogues" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_train_retriever_needs_data_or_dialogues(tmp_path):
    from tests.test_cli import cf

    result = cf("train", "retriever", "--out", str(tmp_path / "m"))
    assert result.returncode == 2 and "pass --data" in result.stderr


@pytest.mark.slow
def test_train_retriever_on_real_dialogue_pairs(tmp_path):
    from convoforge.agents.recommender.signals import dialogue_pairs
    from tests.test_cli import cf

    train = toy_story_then_notebook(tmp_path, n=8)
    pairs = dialogue_pairs([train], load_catalog(SAMPLE))
    assert len(pairs) == 8 and pairs[0][0] == "Hi! What do you like? I loved Toy Story (1995) so much Any ideas?"
    assert pairs[0][1].startswith("The Notebook (2004)")
    out = tmp_path / "m"
    args = ["train", "retriever", "--train", str(train), "--catalog", str(SAMPLE), "--out", str(out), "--steps", "2"]
    result = cf(*args, "--batch-size", "4")
    assert result.returncode == 0, result.stderr[-1500:]
    assert (out / "config.json").is_file() or (out / "modules.json").is_file()


def test_item_meta_counts_the_people_a_message_names():
    from convoforge.agents.recommender.fusion import ItemMeta, Query

    catalog = load_catalog(SAMPLE)
    meta = ItemMeta.from_catalog(catalog)
    named = meta.named("Something with tom hanks, or by Christopher Nolan?")
    nolan = {catalog.index_of[x] for x in ("m04", "m09", "m23")}
    assert named[catalog.index_of["m02"]] == 1  # Toy Story stars Tom Hanks
    assert all(named[r] >= 1 for r in nolan if "Christopher Nolan" in catalog.items[r].fields.get("director", ""))
    assert named[catalog.index_of["m01"]] == 0 and named.sum() >= 2
    assert not meta.named("I like Tom and Hanks is a name").any()  # whole names only
    scores = meta.scores(Query(None, [], 5, text="a horror film", last_text="now a comedy"))
    assert scores["genre_last"][catalog.index_of["m06"]] == 1 and scores["genre_last"][catalog.index_of["m01"]] == 0
    assert scores["genre_context"][catalog.index_of["m01"]] == 1


async def test_films_shown_and_named_again_are_not_liked():
    from convoforge.agents.recommender.agent import RecommenderAgent, build_retriever

    agent = RecommenderAgent(None, build_retriever(SAMPLE), use_llm=False)
    asked = ["Something scary please", "Why would The Shining (1980) suit me?"]
    liked = await agent.recommend(asked, k=5)
    shown = await agent.recommend(asked, k=5, exclude={"m01"})
    assert "m01" not in liked and "m01" not in shown
    assert liked != shown  # named but shown: not a film the user likes, so its neighbours do not lead


async def test_recommend_puts_the_people_the_last_message_names_first():
    from convoforge.agents.recommender.agent import RecommenderAgent, build_retriever

    agent = RecommenderAgent(None, build_retriever(SAMPLE), use_llm=False)
    plain = await agent.recommend(["Something scary please."], k=5)
    hanks = await agent.recommend(["Something scary please.", "No, I want a movie with Tom Hanks."], k=5)
    assert plain[0] != "m02" and hanks[0] == "m02"  # Toy Story, the one film with Tom Hanks
