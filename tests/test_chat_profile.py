"""`convoforge chat` in the terminal, and profiles from MovieLens histories."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from convoforge.agents.recommender.profile import movielens_history, summarise_history, template_profile
from convoforge.errors import ConvoforgeError
from convoforge.llm.scripted import ScriptedChatModel
from tests.conftest import ROOT
from tests.test_catalog import SAMPLE


@pytest.mark.slow
def test_terminal_chat(tmp_path):
    env = dict(os.environ, CONVOFORGE_CACHE=str(tmp_path / "cache"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "convoforge",
            "--model",
            "scripted:tests.rec_fakes:recommender_reply",
            "chat",
            "--catalog",
            str(SAMPLE),
            "--user",
            "u9",
        ],
        input="a scary horror film in a hotel\n\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-1500:]
    assert "The Shining (1980)" in result.stdout and "You asked for horror, and it is one." in result.stdout
    assert (tmp_path / "cache" / "profiles.sqlite").is_file()  # profiles persist across sessions


@pytest.mark.data
async def test_movielens_profile(data_dir):
    ratings = data_dir / "movielens" / "ratings.csv"
    history = movielens_history(ratings, "15")
    assert len(history) >= 10 and history[0]["rating"] >= history[-1]["rating"]
    text = template_profile(history)
    assert text.startswith("Enjoys ") and history[0]["title"] in text
    llm = ScriptedChatModel(["Loves gritty crime dramas and clever thrillers from the nineties."])
    assert (await summarise_history(llm, history)).startswith("Loves gritty")
    assert "rated" in llm.requests[0][-1].content
    assert await summarise_history(ScriptedChatModel(["ok"]), history) == text  # too short: the template
    with pytest.raises(ConvoforgeError, match="no ratings"):
        movielens_history(ratings, "999999")


async def test_one_history_is_always_summarised_with_the_same_seed():
    def film(title: str, rating: float) -> dict:
        return {"title": title, "genres": "Drama", "rating": rating, "tags": []}

    llm = ScriptedChatModel(["Enjoys slow, quiet dramas about families and small towns."])
    for history in ([film("Fargo (1996)", 5.0)], [film("Fargo (1996)", 5.0)], [film("Heat (1995)", 4.0)]):
        await summarise_history(llm, history)
    first, again, other = llm.params
    assert first.temperature > 0 and first.seed is not None and first.seed == again.seed != other.seed
