"""The user simulator: leak filter, intents, the loop against any agent, `convoforge simulate`."""

from __future__ import annotations

import json
import random

import pytest

from convoforge.datasets.catalog import load_catalog
from convoforge.datasets.records import read_dataset
from convoforge.llm.scripted import ScriptedChatModel
from convoforge.simulators import SimulatedUser, UserControls, choose_intent, leaks, remove_leaks
from convoforge.simulators.loop import build_loop
from convoforge.simulators.related import Relatedness
from tests.test_catalog import SAMPLE, write_movielens
from tests.test_persona_cli import cf


@pytest.mark.parametrize(
    ("sentence", "title", "leaked"),
    [
        ("Something like The Shining would be great", "The Shining (1980)", True),
        ("something like the shinning maybe", "The Shining (1980)", True),
        ("I want a scary hotel movie", "The Shining (1980)", False),
        ("I want to watch Up tonight", "Up (2009)", True),
        ("Up for anything, really", "Up (2009)", False),
        ("let's go up the hill", "Up (2009)", False),
    ],
)
def test_leak_detection(sentence, title, leaked):
    assert leaks(sentence, title) is leaked


def test_remove_leaks_keeps_clean_sentences():
    text, dropped = remove_leaks("I love hotels. Maybe The Shining? Something scary!", ["The Shining (1980)"])
    assert text == "I love hotels. Something scary!" and dropped == 1


def test_intent_policy():
    rng = random.Random(0)
    controls = UserControls(targets=["a"], patience=3)
    assert choose_intent(controls, 0, [], rng) == "ask_for_recommendations"
    assert choose_intent(controls, 1, ["b", "a"], rng) == "accept"
    assert choose_intent(controls, 3, ["b"], rng) == "leave"
    assert choose_intent(controls, 1, ["b"], rng) in {"give_feedback", "express_dissatisfaction", "ask_for_explanation"}


async def test_simulated_user_never_names_the_target_even_if_the_llm_does():
    catalog = load_catalog(SAMPLE)
    target = catalog.by_id["m01"]
    llm = ScriptedChatModel(["I really want to see The Shining. It is my favourite!"])
    user = SimulatedUser(UserControls(targets=["m01"], knowledge="expert"), [target], llm)
    message = await user.utter(0, [], [], [])
    assert "shining" not in message["content"].lower()
    assert message["leaks_removed"] == 1 and message["intent"] == "ask_for_recommendations"
    assert message["content"] == "It is my favourite!"
    prompt = llm.requests[0][-1].content
    assert "NEVER say its title" in prompt and "Stanley Kubrick" in prompt and "The Shining" not in prompt


async def test_an_llm_users_turns_are_sampled_with_seeds_from_its_controls():
    target = load_catalog(SAMPLE).by_id["m01"]
    seen = []
    for seed in (5, 5, 6):
        llm = ScriptedChatModel(["Something creepy please."])
        user = SimulatedUser(UserControls(targets=["m01"], seed=seed), [target], llm)
        for turn in range(3):
            await user.utter(turn, [], [], [])
        seen.append([p.seed for p in llm.params])
    assert None not in seen[0] and len(set(seen[0])) == 3  # each turn its own draw
    assert seen[0] == seen[1] and seen[0] != seen[2]  # a session's seed fixes what its user samples


class FakeAgent:
    """Recommends from a fixed list, a few at a time."""

    def __init__(self, order: list[str]) -> None:
        self.order, self.calls = order, 0

    async def respond(self, session_id: str, messages: list[dict]) -> dict:
        items = self.order[3 * self.calls : 3 * self.calls + 3]
        self.calls += 1
        return {"content": f"try {items}", "items": items, "names": items}


@pytest.mark.parametrize(
    ("order", "patience", "outcome", "turns"),
    [(["x", "y", "z", "t1"], 5, "accepted", 2), (["x"] * 30, 2, "left", 2), (["x"] * 30, 9, "max_turns", 4)],
)
async def test_loop_outcomes(order, patience, outcome, turns):
    catalog = load_catalog(SAMPLE)
    user = SimulatedUser(UserControls(targets=["t1"], patience=patience), [catalog.by_id["m01"]])
    user.targets[0] = catalog.by_id["m01"]
    user.controls.targets = ["t1"]
    loop = build_loop(user, FakeAgent(order), max_turns=4)
    state = await loop.ainvoke({"session_id": "s"})
    assert state["outcome"] == outcome and state["turn"] == turns
    intents = [m["intent"] for m in state["messages"] if m["role"] == "user"]
    assert intents[0] == "ask_for_recommendations"


@pytest.mark.slow
def test_simulate_cli_writes_labelled_sessions(tmp_path):
    out = tmp_path / "sessions"
    result = cf(
        "--model",
        "scripted:tests.rec_fakes:recommender_reply",
        "simulate",
        "--n",
        "5",
        "--out",
        str(out),
        "--catalog",
        str(SAMPLE),
        "--max-turns",
        "3",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = list(read_dataset(out)["sessions"])
    assert len(rows) == 5 and (out / "README.md").is_file()
    for row in rows:
        assert row["outcome"] in {"accepted", "left", "max_turns"} and row["profile"] and row["target_names"]
        users = [m for m in row["messages"] if m["role"] == "user"]
        assert all(m["intent"] for m in users)
        for m in users:
            if m["intent"] != "accept":
                assert not any(leaks(m["content"], t) for t in row["target_names"])
    again = cf("simulate", "--n", "1", "--out", str(out))
    assert again.returncode == 2 and "exists" in again.stderr


@pytest.mark.slow
def test_simulated_users_from_rating_histories_name_films_they_liked(tmp_path):
    liked = {1: [1, 2, 3], 2: [2, 5]}  # MovieLens ids: Shining, Alien, Get Out; Alien, Toy Story
    ratings = write_movielens(tmp_path / "ml", [(u, m, 5.0) for u, ms in liked.items() for m in ms] + [(2, 1, 1.0)])
    out = tmp_path / "sessions"
    args = ["simulate", "--n", "6", "--simulator", "template", "--catalog", str(SAMPLE), "--max-turns", "3"]
    result = cf(*args, "--histories", str(ratings), "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    titles = {1: "The Shining (1980)", 2: "Alien (1979)", 3: "Get Out (2017)", 5: "Toy Story (1995)"}
    histories = [{titles[m] for m in ms} for ms in liked.values()]
    for row in read_dataset(out)["sessions"]:
        films = set(row["target_names"]) | set(row["liked_names"])
        assert row["liked_names"] and any(films <= h for h in histories)  # one real user's liked films
        assert not set(row["target_names"]) & set(row["liked_names"])
        first = row["messages"][0]
        assert first["intent"] == "ask_for_recommendations" and row["liked_names"][0] in first["content"]
        for m in row["messages"]:
            if m["role"] == "user" and m["intent"] != "accept":
                assert not any(leaks(m["content"], t) for t in row["target_names"])
    both = cf(*args, "--histories", str(ratings), "--turns", str(SAMPLE), "--out", str(tmp_path / "x"))
    assert both.returncode == 2 and "pass one" in both.stderr


def test_related_films_share_franchise_cast_director_or_genre_and_era(tmp_path):
    films = [
        ("a", "Iron Man (2008)", "action, sci-fi", "Robert Downey Jr.", "Jon Favreau"),
        ("b", "Iron Man 2 (2010)", "action, sci-fi", "Robert Downey Jr.", "Jon Favreau"),
        ("c", "Chef (2014)", "comedy", "Jon Favreau", "Jon Favreau"),
        ("d", "Sherlock Holmes (2009)", "mystery", "Robert Downey Jr.", "Guy Ritchie"),
        ("e", "Toy Story (1995)", "animation", "Tom Hanks", "John Lasseter"),
        ("f", "Man of Steel (2013)", "action, sci-fi", "Henry Cavill", "Zack Snyder"),
    ]
    path = tmp_path / "films.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": i, "title": t, "genre": g.split(", "), "star": [s], "director": [d]}) + "\n"
            for i, t, g, s, d in films
        )
    )
    index = Relatedness.of(load_catalog(path))
    ranked = index.related("a", 5, random.Random(0), top=5)
    assert ranked[0] == "b" and ranked[-1] == "e" and "a" not in ranked  # the sequel first, the cartoon last
    assert ranked.index("d") < ranked.index("f")  # a shared star a year apart beats the same genres five years apart
    assert set(index.related("a", 2, random.Random(1), top=2)) == {"b", "d"}  # drawn from the top two
    shining = Relatedness.of(load_catalog(SAMPLE))
    assert load_catalog(SAMPLE).by_id[shining.related("m01", 1, random.Random(0), top=1)[0]].name == "Alien (1979)"


@pytest.mark.slow
def test_simulated_users_name_films_related_to_their_goal(tmp_path):
    out = tmp_path / "sessions"
    args = ["simulate", "--n", "6", "--simulator", "template", "--catalog", str(SAMPLE), "--max-turns", "3"]
    result = cf(*args, "--name-related", "2", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    catalog = load_catalog(SAMPLE)
    index = Relatedness.of(catalog)
    for row in read_dataset(out)["sessions"]:
        assert len(row["liked_names"]) == 2 and not set(row["target_names"]) & set(row["liked_names"])
        best = index.scores(catalog.index_of[row["targets"][0]])
        ranks = sorted(best, reverse=True)
        assert all(best[catalog.index_of[catalog.find(n).id]] >= ranks[7] for n in row["liked_names"])  # top 8
        first = row["messages"][0]
        assert first["intent"] == "ask_for_recommendations" and row["liked_names"][0] in first["content"]
    ratings = write_movielens(tmp_path / "ml", [(1, 1, 5.0), (1, 2, 5.0)])
    clash = cf(*args, "--name-related", "2", "--histories", str(ratings), "--out", str(tmp_path / "x"))
    assert clash.returncode == 2 and "--name-related" in clash.stderr


def test_seeker_style_slot_fills_real_utterances(tmp_path):
    from convoforge.errors import ConvoforgeError
    from convoforge.simulators.style import SeekerStyle, intent_of

    dialogs = [
        {
            "initiatorWorkerId": 2,
            "respondentWorkerId": 1,
            "messages": [
                {"senderWorkerId": 1, "text": "Hi there, what do you like?"},
                {"senderWorkerId": 2, "text": "Hi im looking for a good horror movie like @111"},
                {"senderWorkerId": 1, "text": "Try @222"},
                {"senderWorkerId": 2, "text": "Oh I haven't seen that one, what is it about?"},
                {"senderWorkerId": 2, "text": "Thanks, I will check it out"},
                {"senderWorkerId": 2, "text": "Have a great night"},
            ],
        }
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in dialogs))
    style = SeekerStyle.from_dialogues([path])
    assert style.by_intent["ask_for_recommendations"] == ["Hi im looking for a good {genre} movie like {liked}"]
    assert style.sizes() == {"accept": 1, "ask_for_explanation": 1, "ask_for_recommendations": 1, "leave": 1}
    rng = random.Random(0)
    said = style.utter("ask_for_recommendations", rng, "comedy", "Superbad (2007)")
    assert said == "Hi im looking for a good comedy movie like Superbad (2007)"
    assert style.utter("ask_for_recommendations", rng, "comedy", "") is None  # needs a film the user liked
    assert style.utter("give_feedback", rng, "comedy", "x") is None
    assert intent_of("bye, thanks!", 4) == "leave" and intent_of("hello", 0) == "ask_for_recommendations"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\n')
    with pytest.raises(ConvoforgeError, match="not ReDial format"):
        SeekerStyle.from_dialogues([bad])


async def test_simulated_user_speaks_in_seeker_style_without_leaking(tmp_path):
    from convoforge.simulators.style import SeekerStyle

    catalog = load_catalog(SAMPLE)
    style = SeekerStyle({"ask_for_recommendations": ["I want a {genre} movie like {liked} or The Shining (1980)"]})
    target, liked = catalog.find("The Shining (1980)"), catalog.find("Alien (1979)")
    user = SimulatedUser(UserControls(targets=[target.id]), [target], None, [liked], style)
    message = await user.utter(0, [], [], [])
    assert message["source"] == "template"  # the real sentence named the target: dropped, template instead
    style.by_intent["ask_for_recommendations"] = ["I want a {genre} movie like {liked}"]
    user = SimulatedUser(UserControls(targets=[target.id]), [target], None, [liked], style)
    message = await user.utter(0, [], [], [])
    assert message == {**message, "content": "I want a horror movie like Alien (1979)", "source": "seeker style"}


async def test_llm_simulator_gets_real_seekers_words_as_few_shot_examples():
    from convoforge.simulators.style import SeekerStyle

    catalog = load_catalog(SAMPLE)
    style = SeekerStyle({"ask_for_recommendations": ["hey any good {genre} flicks like {liked}??"]})
    target, liked = catalog.find("The Shining (1980)"), catalog.find("Alien (1979)")
    plain = ScriptedChatModel(lambda prompt: "Something creepy please.")
    await SimulatedUser(UserControls(targets=[target.id]), [target], plain, [liked]).utter(0, [], [], [])
    assert "Real users wrote" not in plain.requests[0][-1].content
    grounded = ScriptedChatModel(lambda prompt: "Something creepy please.")
    user = SimulatedUser(UserControls(targets=[target.id]), [target], grounded, [liked], style)
    message = await user.utter(0, [], [], [])
    assert "- hey any good horror flicks like Alien (1979)??" in grounded.requests[0][-1].content
    assert message["content"] == "Something creepy please." and message["source"] == "llm"


@pytest.mark.parametrize(
    ("said", "kept"),
    [
        ("User: Any good horror films like Alien (1979)?", "Any good horror films like Alien (1979)?"),
        ("Can you recommend a comedy?", "Can you recommend a comedy?"),
        ("I'm a helpful AI, and I can help you with whatever you need.", ""),
        ("Hello there, and welcome to a fantastic movie recommendation.", ""),
        ("Hey [user_name],", ""),
        ("1. The Way Back (2010): A comedy", ""),
        ("The movie you secretly want:", ""),
        ("Dear user,", ""),
    ],
)
def test_llm_turns_out_of_the_seekers_role_are_dropped(said, kept):
    from convoforge.simulators.user import in_role

    assert in_role(said) == kept


async def test_an_out_of_role_llm_turn_falls_back_to_real_seekers_words():
    from convoforge.simulators.style import SeekerStyle

    catalog = load_catalog(SAMPLE)
    style = SeekerStyle({"ask_for_recommendations": ["any {genre} movies like {liked}?"]})
    target, liked = catalog.find("The Shining (1980)"), catalog.find("Alien (1979)")
    llm = ScriptedChatModel(lambda prompt: "As an AI language model, here are some movies:")
    message = await SimulatedUser(UserControls(targets=[target.id]), [target], llm, [liked], style).utter(0, [], [], [])
    assert message["content"] == "any horror movies like Alien (1979)?" and message["source"] == "seeker style"
