"""Chat turns that change the list: seen it, not that, less X, no X, years, people, why the first one."""

from __future__ import annotations

import pytest

from convoforge.agents.recommender.requests import (
    Request,
    apply_request,
    describe,
    explain,
    genres_of,
    parse_request,
)
from convoforge.datasets.catalog import load_catalog
from tests.test_catalog import SAMPLE

VIOLENT = {"action", "crime", "war", "horror", "thriller"}


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(SAMPLE)


def test_parse_request_reads_constraints_feedback_and_ordinals(catalog):
    less = parse_request("I loved The Dark Knight (2008). Something similar but less violent?", catalog)
    assert set(less.less_genres) == VIOLENT and not less.avoid_genres and not less.want_genres
    no = parse_request("no horror please, something from the 90s with Tom Hanks", catalog)
    assert no.avoid_genres == ["horror"] and (no.year_min, no.year_max) == (1990, 1999) and no.people == ["tom hanks"]
    assert parse_request("a funny movie after 2010", catalog).want_genres == ["comedy"]
    assert parse_request("a funny movie after 2010", catalog).year_min == 2011
    assert parse_request("anything directed by Christopher Nolan", catalog).people == ["christopher nolan"]
    assert parse_request("A comedy with Tom Hanks. Or Tim Allen", catalog).people == ["tom hanks"]  # the full stop
    assert parse_request("something recent", catalog, latest_year=2017).year_min == 2007
    assert parse_request("I don't tend to watch newer movies", catalog, latest_year=2017).year_min is None
    why = parse_request("I've seen that one. Why would I like the first one?", catalog)
    assert why.seen and why.why and why.ordinal == 0
    assert parse_request("what about the last one?", catalog).ordinal == -1
    assert parse_request("not those, something else", catalog).not_that
    plain = parse_request("hello there", catalog)
    assert plain == Request()


def test_apply_request_filters_hard_constraints_and_reorders_soft_ones(catalog):
    items = catalog.items
    less = apply_request(items, Request(less_genres=sorted(VIOLENT)))
    assert len(less) == len(items) and not genres_of(less[0]) & VIOLENT
    assert genres_of(less[-1]) & VIOLENT
    no = apply_request(items, Request(avoid_genres=["horror"]))
    assert no and all("horror" not in genres_of(it) for it in no)
    nineties = apply_request(items, Request(year_min=1990, year_max=1999))
    assert {it.name for it in nineties} == {"Toy Story (1995)", "Pulp Fiction (1994)", "Jurassic Park (1993)"}
    hanks = apply_request(items, Request(people=["tom hanks"]))
    assert hanks[0].name == "Toy Story (1995)"


def test_explanations_are_grammatical_and_grounded(catalog):
    toy = catalog.find("Toy Story (1995)")
    assert describe(toy) == (
        "An animation, comedy and family film directed by John Lasseter, starring Tom Hanks and Tim Allen."
    )
    interstellar, inception = catalog.find("Interstellar (2014)"), catalog.find("Inception (2010)")
    text = explain(interstellar, [inception], Request(less_genres=sorted(VIOLENT)))
    assert text.startswith("Like Inception (2010), which you mentioned, it is directed by Christopher Nolan.")
    assert "none of what you wanted less of" in text and "A sci-fi, drama and adventure film directed by" in text
    assert explain(toy, [], Request(want_genres=["comedy"])).startswith("You asked for comedy, and it is one.")


@pytest.mark.slow
class TestChatTurns:
    """The graph on the sample catalogue with rules (the LLM's answers unusable), real MiniLM."""

    @pytest.fixture(scope="class")
    def agent(self):
        from convoforge.agents.recommender.agent import RecommenderAgent, build_retriever
        from convoforge.llm.scripted import ScriptedChatModel
        from tests.rec_fakes import broken_reply

        return RecommenderAgent(ScriptedChatModel(broken_reply), build_retriever(SAMPLE))

    async def test_less_violent_then_why_the_first_one(self, agent):
        first = await agent.chat(
            "t1", "I loved The Dark Knight (2008) and Inception (2010). Something similar but less violent?"
        )
        shown = first["recommendations"][:3]
        assert not genres_of_card(shown[0]) & VIOLENT
        assert "Christopher Nolan" in first["reply"] or "none of what you wanted less of" in first["reply"]
        why = await agent.chat("t1", "I've seen that one. Why would I like the first one?")
        assert why["decision"]["action"] == "explain" and [c["id"] for c in why["focus"]] == [shown[0]["id"]]
        assert why["reply"].startswith(shown[0]["name"] + ": ") and "film" in why["reply"]
        assert why["reply"] != first["reply"]

    async def test_seen_it_and_not_that_change_the_list(self, agent):
        first = await agent.chat("t2", "a comedy please")
        shown = [c["id"] for c in first["recommendations"][:3]]
        second = await agent.chat("t2", "I've seen the second one")
        assert second["decision"]["action"] == "recommend" and shown[1] in second["rejected"]
        assert shown[0] not in second["rejected"]
        assert shown[1] not in [c["id"] for c in second["recommendations"]]
        third = await agent.chat("t2", "not those, something else")
        now = [c["id"] for c in third["recommendations"][:3]]
        assert not set(now) & set([c["id"] for c in second["recommendations"][:3]])

    async def test_catalogue_constraints_filter_and_reorder(self, agent):
        nineties = await agent.chat("t3", "something from the 90s")
        assert all(1990 <= int(c["year"]) <= 1999 for c in nineties["recommendations"])
        hanks = await agent.chat("t4", "a movie with Tom Hanks")
        assert hanks["recommendations"][0]["name"] == "Toy Story (1995)"
        assert "stars Tom Hanks, as you asked" in hanks["recommendations"][0]["explanation"]
        no = await agent.chat("t5", "a scary film but no horror")
        assert all("horror" not in c["genre"] for c in no["recommendations"])
        assert "no horror" in no["preferences"]["constraints"]


def genres_of_card(card: dict) -> set[str]:
    return {g.strip() for g in card["genre"].split(",") if g.strip()}


@pytest.mark.slow
def test_app_answers_why_with_the_explanation_and_turns_down_seen_films(monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.test_app import APP

    monkeypatch.setenv("CONVOFORGE_MODEL", "scripted:tests.rec_fakes:broken_reply")
    monkeypatch.setenv("CONVOFORGE_CATALOG", str(SAMPLE))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    at.chat_input[0].set_value(
        "I loved The Dark Knight (2008) and Inception (2010). Something similar but less violent?"
    ).run()
    assert not at.exception
    cards = [m.value for m in at.markdown if m.value.startswith("**")]
    assert len(cards) == 3
    at.chat_input[0].set_value("I've seen that one. Why would I like the first one?").run()
    assert not at.exception
    cards_now = [m.value for m in at.markdown if m.value.startswith("**")]
    assert cards_now[3:] == cards[:1]  # one card, the first one, under its explanation
    assert any(m.value.startswith(cards[0].strip("*") + ": ") for m in at.markdown)
    at.chat_input[0].set_value("not those, something else").run()
    newest = [m.value for m in at.markdown if m.value.startswith("**")][4:]
    assert len(newest) == 3 and not set(newest) & set(cards)


def test_only_films_in_a_negative_clause_are_disliked(catalog):
    from convoforge.agents.recommender.graph import disliked_films

    said = "I didn't like The Shining (1980) but I loved Toy Story (1995)"
    assert disliked_films(said, catalog.mentioned) == {"m01"}
    assert disliked_films("I hate Alien (1979). Inception (2010) was great", catalog.mentioned) == {"m07"}
    assert disliked_films("Seen it. I loved Toy Story (1995)", catalog.mentioned) == set()
    assert disliked_films("Not Toy Story (1995), please", catalog.mentioned) == {"m02"}
    # not seen yet, or no preference, says nothing against the film
    assert disliked_films("I have not seen Alien (1979), but I loved Toy Story (1995)", catalog.mentioned) == set()
    assert disliked_films("I don't care about the genre, maybe Alien (1979)", catalog.mentioned) == set()
    assert disliked_films("I haven't seen Alien (1979) and I don't like Toy Story (1995)", catalog.mentioned) == {"m02"}


def test_a_greeting_gets_a_question_only_when_it_opens_the_conversation():
    from convoforge.agents.recommender.graph import rule_decision

    assert rule_decision("hi there", False, []).action == "ask"
    assert rule_decision("ok", False, [], opening=False).action == "recommend"
    assert rule_decision("thanks", True, [], opening=False).action == "recommend"
