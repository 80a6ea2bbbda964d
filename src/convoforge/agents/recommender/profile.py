"""Natural-language user profiles from a MovieLens history (ratings and tags), summarised by the LLM."""

from __future__ import annotations

import zlib
from pathlib import Path

from convoforge.datasets.catalog import open_csv
from convoforge.datasets.export import best_and_worst, history_lines
from convoforge.datasets.prompts import PROFILE
from convoforge.errors import ConvoforgeError
from convoforge.llm import GenParams
from convoforge.llm.base import ChatModel


def movielens_history(ratings: Path, user_id: str, top: int = 15) -> list[dict]:
    """A user's best and worst rated movies with their tags."""
    tags: dict[str, list[str]] = {}
    if not ratings.is_file() or not (ratings.parent / "movies.csv").is_file():
        raise ConvoforgeError(f"{ratings} is not a MovieLens ratings.csv with movies.csv beside it")
    with open_csv(ratings.parent / "movies.csv", {"movieId", "title", "genres"}, "a MovieLens movies.csv") as reader:
        movies = {r["movieId"]: (r["title"], r["genres"].replace("|", ", ")) for r in reader}
    tag_file = ratings.parent / "tags.csv"
    if tag_file.is_file():
        with open_csv(tag_file, {"userId", "movieId", "tag"}, "a MovieLens tags.csv") as reader:
            for r in reader:
                if r["userId"] == user_id:
                    tags.setdefault(r["movieId"], []).append(r["tag"])
    with open_csv(ratings, {"userId", "movieId", "rating"}, "a MovieLens ratings.csv") as reader:
        rows = [r for r in reader if r["userId"] == user_id and r["movieId"] in movies]
    if not rows:
        raise ConvoforgeError(f"MovieLens user {user_id} has no ratings in {ratings}")
    rows.sort(key=lambda r: -float(r["rating"]))
    return [
        {
            "title": movies[r["movieId"]][0],
            "genres": movies[r["movieId"]][1],
            "rating": float(r["rating"]),
            "tags": tags.get(r["movieId"], []),
        }
        for r in best_and_worst(rows, top)
    ]


def template_profile(history: list[dict]) -> str:
    """A profile written from the history alone (no LLM)."""
    liked = [h for h in history if h["rating"] >= 4]
    disliked = [h for h in history if h["rating"] <= 2]
    genres: dict[str, int] = {}
    for h in liked:
        for g in h["genres"].split(", "):
            genres[g] = genres.get(g, 0) + 1
    top = ", ".join(sorted(genres, key=lambda g: -genres[g])[:3]).lower()
    text = f"Enjoys {top} films such as {', '.join(h['title'] for h in liked[:3])}."
    if disliked:
        text += f" Did not like {', '.join(h['title'] for h in disliked[:2])}."
    return text


async def summarise_history(llm: ChatModel, history: list[dict]) -> str:
    """The LLM's summary of the history; the template profile when the answer is empty.

    Sampled with a seed taken from the prompt, so one history always gets the same summary.
    """
    prompt = PROFILE.format(history=history_lines(history))
    reply = await llm.achat(prompt, GenParams(temperature=0.3, max_tokens=90, seed=zlib.crc32(prompt.encode())))
    text = reply.text.strip()
    return text if len(text.split()) >= 6 else template_profile(history)
