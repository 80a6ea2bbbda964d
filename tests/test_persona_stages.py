"""Each stage of the persona pipeline with scripted LLM answers, malformed ones included."""

from __future__ import annotations

import random

import numpy as np
import pytest

from convoforge.agents.persona import stages
from convoforge.agents.persona.context import PersonaContext
from convoforge.agents.persona.seeds import load_seeds
from convoforge.datasets.spc import parse_transcript, read_spc
from convoforge.errors import ConvoforgeError
from convoforge.llm.scripted import ScriptedChatModel


def test_parse_transcript_handles_continuations_and_variants():
    text = "Intro line\nUser 1: Hi!\nhow are you\nuser2: Fine.\n\nUSER 1 :  Good"
    assert parse_transcript(text) == [("User 1", "Hi! how are you"), ("User 2", "Fine."), ("User 1", "Good")]


def test_parse_candidate_bounds_and_errors():
    ctx = PersonaContext(min_turns=2, max_turns=3)
    job = stages.GenerationJob("it0-p0", 0, {"User 1": ["a"], "User 2": ["b"]})
    long = "\n".join(f"User {1 + i % 2}: line {i}" for i in range(10))
    ok = stages.parse_candidate(long, job, 0, ctx)
    assert ok.parse_error is None and len(ok.turns) == 6 and ok.id == "it0-p0-c0"  # 3 turns per user
    short = stages.parse_candidate("User 1: hi\nUser 2: hey", job, 1, ctx)
    assert "too short" in short.parse_error and short.raw
    junk = stages.parse_candidate("I cannot write that.", job, 2, ctx)
    assert junk.parse_error == "no 'User 1:'/'User 2:' lines" and junk.raw == "I cannot write that."


def test_shipped_seeds_and_text_file(tmp_path):
    seeds = load_seeds(None)
    assert len(seeds.attributes) >= 100 and len(seeds.examples) >= 3
    assert all(len(e["turns"]) >= 12 for e in seeds.examples)
    path = tmp_path / "attrs.txt"
    path.write_text("\n".join(f"I like thing {i}." for i in range(12)) + "\nI like thing 1.\n")
    assert len(load_seeds(path).attributes) == 12
    path.write_text("I am short.\n")
    with pytest.raises(ConvoforgeError, match="at least 10"):
        load_seeds(path)
    with pytest.raises(ConvoforgeError, match="no seed file"):
        load_seeds(tmp_path / "missing.txt")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ConvoforgeError, match="not a Synthetic-Persona-Chat CSV"):
        load_seeds(bad)
    for name in ("binary.txt", "binary.csv"):
        binary = tmp_path / name
        binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00" * 20)
        with pytest.raises(ConvoforgeError, match="is not UTF-8 text"):
            load_seeds(binary)


def test_spc_seed_examples_are_clean_train_conversations(tmp_path):
    import csv

    from convoforge.critics.faithfulness_data import split_of

    clean = "User 1: Hi! How are you?\nUser 2: Good, I just got back from a run.\nUser 1: Nice, I love running too."
    slotted = "User 1: Hi, I'm [User 1's name].\nUser 2: Hi! I'm a nurse.\nUser 1: That's cool, I play piano."
    rows = []
    for i in range(40):  # profiles differ per row, so the hash split puts some in train
        profiles = [f"I have {i} cats.", "I like tea."], [f"I am {20 + i} years old.", "I run."]
        rows.append([*("\n".join(p) for p in profiles), slotted if i % 2 else clean])
    path = tmp_path / "spc.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([["user 1 personas", "user 2 personas", "Best Generated Conversation"], *rows])
    examples = load_seeds(path, None).examples
    train = [r for r in read_spc(path) if split_of(r) == "train"]
    assert 0 < len(examples) < len(train)  # some train rows are left out
    assert all("[" not in t for e in examples for _, t in e["turns"])  # none with a template slot
    assert len(examples) == sum("[" not in r["turns"][0][1] for r in train)  # every clean train row kept


@pytest.mark.data
def test_spc_seeds(data_dir):
    from convoforge.agents.persona.hygiene import clean_conversation, small_talk

    seeds = load_seeds(data_dir / "spc" / "Synthetic-Persona-Chat_valid.csv")
    assert len(seeds.attributes) == len(set(seeds.attributes)) > 400 and len(seeds.examples) == 50
    every = load_seeds(data_dir / "spc" / "Synthetic-Persona-Chat_valid.csv", None).examples
    assert len(every) > 300  # of 605 train conversations, the ones with no template text, slot or loop
    assert all(clean_conversation([{"speaker": s, "content": t} for s, t in e["turns"]], e["profiles"]) for e in every)
    rows = read_spc(data_dir / "spc" / "Synthetic-Persona-Chat_valid.csv")
    assert rows[0]["turns"][0] == ["User 1", "Hi!"]
    assert not any(small_talk(r["turns"]) for r in rows if r["turns"])  # every real one says something


def test_questions_are_parsed_from_messy_answers():
    text = 'Sure!\n1. What is your job?\n- Where do you live?\nnot a question\n"What pets do you have?"'
    assert stages._questions([text]) == ["What is your job?", "Where do you live?", "What pets do you have?"]


@pytest.mark.slow
async def test_query_induction_and_bootstrapping(embedder):
    attrs = ["I have a dog.", "I own a dog.", "I love my dog.", "I am a nurse.", "I work as a nurse."]
    llm = ScriptedChatModel(["What pets do you have?", "no question here"])
    ctx = PersonaContext(query_cluster_distance=0.5, query_steps=2)
    queries = await stages.induce_queries(llm, embedder, attrs, ctx, random.Random(0))
    assert queries == ["What pets do you have?"]
    grown = await stages.bootstrap_queries(
        ScriptedChatModel(["What is your job?\nWhat is your job?\ngarbage"]), queries, ctx, random.Random(0)
    )
    assert grown == ["What pets do you have?", "What is your job?"]


@pytest.mark.slow
async def test_persona_bootstrapping_keeps_new_and_logs_rejections(embedder):
    seeds = ["I have a dog.", "I am a nurse.", "I like tea.", "I live in Paris.", "I play chess."]
    llm = ScriptedChatModel(["I have a dog.", "Sure, here it is", "I collect old maps from Norway.", "My car is red."])
    ctx = PersonaContext(persona_target=2)
    new, log = await stages.bootstrap_personas(llm, embedder, seeds, ["What do you do?"], ctx, random.Random(0))
    assert new == ["I collect old maps from Norway.", "My car is red."]
    reasons = {e["reason"].split(" (")[0] for e in log}
    assert reasons == {"near-duplicate", "not first person"}
    prompt = llm.requests[0][-1].content
    assert prompt.startswith("Imagine you are a person with the following persona") and "Do not repeat" in prompt


@pytest.mark.slow
async def test_profiles_reject_redundant_and_contradicting(embedder):
    attrs = ["I have a dog.", "I own a dog.", "I am a vegetarian.", "I eat steak every day.", "I like jazz."]
    answers = iter([])

    def judge(messages):
        text = messages[-1].content
        return '{"contradicts": true}' if "steak" in text and "vegetarian" in text else '{"contradicts": false}'

    ctx = PersonaContext(profiles=3, profile_size=3, duplicate_cosine=0.85)
    profiles, log = await stages.build_profiles(ScriptedChatModel(judge), embedder, attrs, ctx, random.Random(1))
    del answers
    for p in profiles:
        assert not ({"I have a dog.", "I own a dog."} <= set(p))
        assert not ({"I am a vegetarian.", "I eat steak every day."} <= set(p))
    kinds = {e["reason"].split(" (")[0] for e in log}
    assert kinds <= {"redundant", "contradicts the profile"} and kinds


@pytest.mark.slow
def test_pairing_uses_shared_clusters(embedder):
    profiles = [
        ["I have a dog.", "I am a nurse.", "I like jazz."],
        ["I own a dog.", "I work as a nurse.", "I love jazz music."],
        ["I drive a truck.", "I live in Japan.", "I hate the beach."],
    ]
    ctx = PersonaContext(pairs=1, pair_threshold=2, pair_cluster_distance=0.5)
    pairs, info = stages.pair_profiles(embedder, profiles, ctx)
    assert pairs == [[0, 1]] and info == {"above_threshold": 1, "filled_below_threshold": 0}
    pairs, info = stages.pair_profiles(
        embedder, profiles, PersonaContext(pairs=2, pair_threshold=2, pair_cluster_distance=0.5)
    )
    assert pairs[0] == [0, 1] and len(pairs) == 2 and info["filled_below_threshold"] == 1


def test_generator_prompt_has_examples_profiles_and_bounds():
    seeds = load_seeds(None)
    job = stages.GenerationJob(
        "it0-p0", 0, {"User 1": ["I like tea."], "User 2": ["I have a cat."]}, seeds.examples[:2]
    )
    messages = stages.generator_messages(job, PersonaContext())
    task = messages[-1]["content"]
    assert task.count("Conversation:") == 3 and "I like tea." in task
    assert "more than 5 turns and less than 8 turns" in task and "not direct copies of their profiles" in task


class TopicEmbedder:
    """One axis per topic word, so a text's nearest neighbours are the texts about the same things."""

    TOPICS = ("dog", "piano", "surf", "chess")

    def embed(self, texts):
        vectors = np.array([[t.lower().count(w) + 0.01 for w in self.TOPICS] for t in texts], dtype=float)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_nearest_examples_are_the_pool_conversations_about_the_nearest_people():
    def example(a, b):
        return {"profiles": {"User 1": [f"I have a {a}."], "User 2": [f"I love {b}."]}, "turns": [["User 1", "Hi"]]}

    pool = [example("dog", "dog"), example("piano", "surf"), example("chess", "chess"), example("surf", "piano")]
    emb = TopicEmbedder()
    vectors = emb.embed([stages.pair_text(e["profiles"]) for e in pool])
    pair = {"User 1": ["I play the piano."], "User 2": ["I surf on weekends."]}
    ctx = PersonaContext(few_shot=2, few_shot_nearest=2)
    drawn = [stages.nearest_examples(emb, pool, vectors, pair, ctx, random.Random(s)) for s in range(5)]
    assert all(sorted(map(id, d)) == sorted(map(id, pool[1::2])) for d in drawn)
    ctx = PersonaContext(few_shot=1, few_shot_nearest=1)
    chess = {"User 1": ["I play chess."], "User 2": ["Chess is my life."]}
    assert stages.nearest_examples(emb, pool, vectors, chess, ctx, random.Random(0)) == [pool[2]]
    few = stages.nearest_examples(
        emb, pool, vectors, pair, PersonaContext(few_shot=2, few_shot_nearest=1), random.Random(0)
    )
    assert sorted(map(id, few)) == sorted(map(id, pool[1::2]))  # never fewer examples than --few-shot asks for


def test_winner_share_draws_each_example_from_the_winners_with_that_chance():
    seeds = [{"turns": [["User 1", f"seed {i}"]]} for i in range(6)]
    winners = [{"turns": [["User 1", f"winner {i}"]]} for i in range(6)]
    pool = seeds + winners

    def drawn(share, n=300, few_shot=2, pool=pool, n_seeds=len(seeds)):
        ctx = PersonaContext(few_shot=few_shot, winner_share=share)
        rng = random.Random(0)
        return [stages.draw_examples(pool, n_seeds, ctx, rng) for _ in range(n)]

    def won(draws):
        return sum(e in winners for d in draws for e in d) / sum(map(len, draws))

    assert won(drawn(1.0)) == 1 and won(drawn(0.0)) == 0
    assert 0.4 < won(drawn(0.5)) < 0.6
    assert all(len(d) == 2 and d[0] is not d[1] for d in drawn(0.5))  # never the same example twice
    assert 0.4 < won(drawn(None)) < 0.6  # default: the whole pool alike (here half of it won)
    assert won(drawn(1.0, pool=pool[:7], few_shot=3)) == 1 / 3  # one winner so far: the rest from the seeds
    assert won(drawn(1.0, pool=seeds)) == 0  # no winners yet (iteration 1): the seeds
    few_seeds = drawn(0.0, pool=seeds[:1] + winners, few_shot=3, n_seeds=1)  # too few seeds: winners make up the k
    assert all(len(d) == 3 for d in few_seeds) and won(few_seeds) == 2 / 3
