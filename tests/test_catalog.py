"""Catalogue loaders and title lookup."""

from __future__ import annotations

import json

import pytest

from convoforge.datasets.catalog import load_catalog, movielens_likes, normalise
from convoforge.errors import ConvoforgeError
from tests.conftest import ROOT

SAMPLE = ROOT / "src/convoforge/agents/recommender/data/sample_movies.jsonl"


def test_jsonl_catalogue_and_lookup():
    catalog = load_catalog(SAMPLE)
    assert len(catalog) == 24
    shining = catalog.find("the shining (1980)")
    assert shining.title == "The Shining" and shining.year == "1980" and "Kubrick" in shining.text()
    assert catalog.find("The Shining").id == shining.id
    assert normalise("  Amélie!!  (2001) ") == "amlie (2001)"


def test_id2info_with_unknown_fields(tmp_path):
    path = tmp_path / "items.json"
    path.write_text(json.dumps({"7": {"name": "Heat  (1995)", "genre": ["crime"], "mood": "tense", "budget": 60}}))
    catalog = load_catalog(path)
    item = catalog.by_id["7"]
    assert item.name == "Heat (1995)" and item.fields["mood"] == "tense" and "budget: 60" in item.text()


def test_movielens_with_tags(tmp_path):
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n1,Toy Story (1995),Animation|Comedy\n")
    (tmp_path / "tags.csv").write_text("userId,movieId,tag,timestamp\n1,1,pixar,0\n2,1,pixar,0\n3,1,fun,0\n")
    item = load_catalog(tmp_path / "movies.csv").by_id["1"]
    assert item.fields == {"genre": "animation, comedy", "tags": "pixar, fun"}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.json", "[1, 2]", "JSON object"),
        ("b.json", '{"1": {"title": "x"}}', "has no 'name'"),
        ("c.jsonl", '{"id": 1}\n', "needs 'id' and 'title'"),
        ("d.jsonl", "not json\n", "not JSON"),
        ("e.csv", "a,b\n1,2\n", "not a MovieLens"),
        ("f.txt", "x", "unknown catalogue format"),
        ("g.json", "{}", "has no items"),
    ],
)
def test_bad_catalogues(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ConvoforgeError, match=message):
        load_catalog(path)
    with pytest.raises(ConvoforgeError, match="no catalogue"):
        load_catalog(tmp_path / "missing.json")


@pytest.mark.data
def test_redial_and_movielens_load(data_dir):
    redial = load_catalog(data_dir / "redial" / "id2info.json")
    assert len(redial) == 6583 and redial.find("The Shining (1980)") is not None
    movielens = load_catalog(data_dir / "movielens" / "movies.csv")
    assert len(movielens) > 7000  # this copy of ml-latest-small lists 7,998 of its 9,125 movies


def write_movielens(folder, ratings: list[tuple[int, int, float]]):
    """A tiny MovieLens folder (movies.csv, ratings.csv): films of the sample catalogue and one that is not in it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "movies.csv").write_text(
        'movieId,title,genres\n1,"Shining, The (1980)",Horror\n2,Alien (1979),Horror|Sci-Fi\n'
        "3,Get Out (2017),Horror\n4,Not In The Catalogue (1999),Drama\n5,Toy Story (1995),Animation\n"
    )
    lines = ["userId,movieId,rating,timestamp"] + [f"{u},{m},{r},{i}" for i, (u, m, r) in enumerate(ratings)]
    (folder / "ratings.csv").write_text("\n".join(lines) + "\n")
    return folder / "ratings.csv"


def test_movielens_likes_match_titles_and_keep_only_liked(tmp_path):
    ratings = write_movielens(tmp_path, [(1, 1, 5.0), (1, 2, 4.0), (1, 4, 5.0), (1, 5, 2.0), (2, 3, 4.5), (2, 3, 5.0)])
    catalog = load_catalog(SAMPLE)
    likes = movielens_likes(ratings, catalog)
    names = {user: [catalog.by_id[i].name for i in ids] for user, ids in likes.items()}
    assert names == {"1": ["The Shining (1980)", "Alien (1979)"], "2": ["Get Out (2017)"]}
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    (tmp_path / "bad").mkdir()
    with pytest.raises(ConvoforgeError, match=r"not a MovieLens ratings\.csv"):
        movielens_likes(tmp_path / "bad.csv", catalog)
    with pytest.raises(ConvoforgeError, match=r"movies\.csv beside it"):
        movielens_likes(tmp_path / "bad" / "ratings.csv", catalog)
