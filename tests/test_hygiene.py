import numpy as np
import pytest

from convoforge.agents.persona import hygiene
from convoforge.agents.persona.context import PersonaContext
from convoforge.agents.persona.evaluate import hygiene_rates
from convoforge.agents.persona.stages import GenerationJob, parse_candidate, reason_key
from convoforge.datasets.discriminator import cv_accuracy

PROFILES = {
    "User 1": ["I play the piano every evening.", "I live in a small town."],
    "User 2": ["I am a nurse.", "I have two cats."],
}


@pytest.mark.parametrize(
    "text",
    [
        "I play the piano every evening.",
        "My favourite food is pizza.",
        "I've lived in Spain for ten years.",
        "I'm afraid of heights.",
    ],
)
def test_good_attributes_pass(text):
    assert hygiene.attribute_problem(text, "What do you do in the evening?") is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            'I am a person with the persona of "The most specific question that I am replying to with the '
            'provided statements."',
            "prompt text",
        ),
        ("I am a person with the persona of a teacher.", "prompt text"),
        ("I reply to the most specific question that you asked.", "prompt text"),
        ("I answer with only one short sentence.", "an instruction"),
        ("I like dogs. I also like cats.", "more than one sentence"),
        ("I wonder what you do for a living?", "a question"),
        ("Answer with only one short sentence.", "not first person"),
        ("The holidays make me sad.", "not first person"),
        ("I think what you do in your free time matters.", "quotes the query"),
        ("I", "length"),
        ("I am a highly specialized AI designed to assist human users with their branding.", "the model, not a person"),
    ],
)
def test_bad_attributes_are_rejected_with_their_reason(text, reason):
    problem = hygiene.attribute_problem(text, "What do you do in your free time?")
    assert problem is not None and problem.startswith(reason), problem


def test_prompt_leak_questions_are_dropped():
    assert hygiene.question_problem("What is the most specific question that you are replying to?")
    assert hygiene.question_problem("What do you do for a living?") is None


GOOD = [
    ("User 1", "Hi! How was your day at the hospital?"),
    ("User 2", "Long, but the patients were kind. Do you still play music?"),
    ("User 1", "Every evening, mostly Chopin. It calms me down."),
    ("User 2", "My cats would sit on the keys if I had a piano."),
    ("User 1", "Ha! Small towns are quiet, so I can play late."),
    ("User 2", "That sounds lovely. Bye for now!"),
]


def test_a_clean_conversation_has_no_problems():
    assert hygiene.conversation_problems(GOOD, PROFILES) == []


def test_short_repeated_turns_are_not_loops():
    turns = [("User 1", "Hi!"), ("User 2", "Hi!"), *GOOD, ("User 1", "Bye!"), ("User 2", "Bye!")]
    assert hygiene.conversation_problems(turns, PROFILES) == []


@pytest.mark.parametrize(
    ("turns", "reason"),
    [
        ([*GOOD, GOOD[2]], "loop"),
        ([*GOOD, ("User 2", "Long, but the patients were so kind. Do you still play music?")], "loop"),
        (GOOD[:2] + [("User 1", "Yes."), ("User 2", "No.")] * 3, "loop"),
        ([*GOOD[:3], ("User 2", "Music! Music!"), ("User 1", "Music! Music!"), ("User 2", "Music! Music!")], "loop"),
        ([*GOOD[:3], ("User 2", GOOD[2][1]), *GOOD[4:]], "copying"),
        ([*GOOD[:4], ("User 1", "I'm glad you're interested."), ("User 2", "I'm glad you're interested.")], "copying"),
        ([("User 1", t) for _, t in GOOD], "speakers do not alternate"),
        (
            [
                ("User 1", "I play the piano every evening."),
                ("User 2", "I am a nurse."),
                ("User 1", "I live in a small town."),
                ("User 2", "I have two cats."),
            ],
            "recitation",
        ),
        ([*GOOD, ("User 1", "User 2 persona: I am a nurse.")], "prompt text"),
        ([*GOOD[:5], ("User 2", "That sounds lovely. Conversation:")], "prompt text"),
        ([*GOOD, ("User 1", "word " * 90)], "turn bounds"),
        ([("User 1", "Hi, I'm [user 1's name]. What do you do?"), *GOOD[1:]], "placeholder"),
        ([*GOOD[:5], ("User 2", "Nice to meet you, (name)!")], "placeholder"),
        ([*GOOD[:5], ("User 2", "[They walk to the park together.]")], "placeholder"),
        (
            [("User 1", "Hello!"), ("User 2", "Hello!"), ("User 1", "Oh, hello!"), ("User 2", "Nice to meet you!")],
            "small",
        ),
    ],
)
def test_bad_conversations_are_flagged_with_their_reason(turns, reason):
    problems = hygiene.conversation_problems(turns, PROFILES)
    assert any(p.startswith(reason) for p in problems), problems


@pytest.mark.parametrize(
    "text",
    ["I love (some) pizza.", "See you (later)!", "I'm 25 (my age is fine).", "Ha :) [laughs] no", "(user 1 name)"],
)
def test_placeholders_are_template_slots_and_stage_directions_only(text):
    found = hygiene.placeholder(text)
    if text in ("Ha :) [laughs] no", "(user 1 name)"):  # square brackets are always stage text; a slot name is one
        assert found and found.startswith("placeholder"), text
    else:
        assert found is None, found


def test_a_degenerate_candidate_is_rejected_before_the_critics_with_its_reason():
    raw = "\n".join(f"{s}: {t}" for s, t in [*GOOD, GOOD[2], GOOD[3]])
    # the loop starts after 3 turns each: with 4 needed, nothing can be kept
    cand = parse_candidate(raw, GenerationJob("p0", 0, PROFILES), 0, PersonaContext(min_turns=4, max_turns=7))
    assert cand.parse_error is None and cand.hygiene.startswith("loop")
    assert not cand.usable
    assert reason_key(f"hygiene: {cand.hygiene}") == "hygiene: loop"
    assert reason_key("unparseable: too short: 1/1 turns") == "unparseable"


@pytest.mark.parametrize(
    ("last", "kept"),
    [
        ("That sounds lovely. I will come and list", "That sounds lovely."),  # the token limit, mid-sentence
        ("That sounds lovely. Bye for now! User", "That sounds lovely. Bye for now!"),  # the next label begun
        ("That sounds lovely. Bye for now! Conversation:", "That sounds lovely. Bye for now!"),  # a lead-in
        ('She said "see you." Then I', 'She said "see you."'),  # closing quotes stay with their sentence
        ("That sounds lovely, I", None),  # no finished sentence: the turn goes
        ("That sounds lovely. Bye for now!", "That sounds lovely. Bye for now!"),  # finished: untouched
        ("See you :)", "See you :)"),
    ],
)
def test_a_last_turn_stopped_mid_sentence_is_cut_back_to_its_last_finished_sentence(last, kept):
    turns = [*GOOD[:5], ("User 2", "Long day. My cats would sit on the keys."), ("User 1", last)]
    raw = "\n".join(f"{s}: {t}" for s, t in turns)
    cand = parse_candidate(raw, GenerationJob("p0", 0, PROFILES), 0, PersonaContext(min_turns=3, max_turns=7))
    assert cand.usable and cand.raw == raw, cand.hygiene
    assert [(t.speaker, t.content) for t in cand.turns] == turns[:-1] + ([("User 1", kept)] if kept else [])
    assert not hygiene.unfinished(cand.turns[-1].content)


def test_a_conversation_too_short_without_its_cut_last_turn_says_so():
    raw = "\n".join(f"{s}: {t}" for s, t in [*GOOD[:5], ("User 2", "My cats would sit on the")])
    cand = parse_candidate(raw, GenerationJob("p0", 0, PROFILES), 0, PersonaContext(min_turns=3, max_turns=7))
    assert cand.parse_error == "too short: 3/2 turns, need 3 per user (the last, stopped mid-sentence, was dropped)"
    assert reason_key(f"unparseable: {cand.parse_error}") == "unparseable"
    assert len(cand.turns) == 5


def test_hygiene_rates_of_crafted_rows():
    rows = [
        {"profiles": PROFILES, "messages": [{"speaker": s, "content": t} for s, t in GOOD]},
        {"profiles": PROFILES, "messages": [{"speaker": s, "content": t} for s, t in [*GOOD, GOOD[2]]]},
        {
            "profiles": PROFILES,
            "messages": [
                {"speaker": "User 1", "content": "I play the piano every evening."},
                {"speaker": "User 2", "content": "User 2 persona: I am a nurse."},
            ],
        },
    ]
    rates = hygiene_rates(rows)
    assert rates["degenerate_rate"] == round(1 / 3, 4)
    assert rates["prompt_leak_rate"] == round(1 / 3, 4)
    assert rates["placeholder_rate"] == 0
    slot = {"profiles": PROFILES, "messages": [{"speaker": "User 1", "content": "Hi, I'm [name]!"}]}
    assert hygiene_rates([*rows, slot])["placeholder_rate"] == 0.25
    assert rates["recitation_rate"] == round(2 / 15, 4)
    assert rates["unfinished_rate"] == 0
    cut = {"profiles": PROFILES, "messages": [*rows[0]["messages"][:-1], {"speaker": "User 2", "content": "Bye for"}]}
    assert hygiene_rates([*rows, cut])["unfinished_rate"] == 0.25
    assert rates["small_talk_rate"] == 0
    hello = [
        {"speaker": f"User {1 + i % 2}", "content": t} for i, t in enumerate(["Hi!", "Hello there!", "How are you?"])
    ]
    assert hygiene_rates([*rows, {"profiles": PROFILES, "messages": hello}])["small_talk_rate"] == 0.25


def test_small_talk_is_a_whole_conversation_of_short_turns():
    greeting = [("User 1", "Hi!"), ("User 2", "Hello, nice to meet you!")]
    assert hygiene.small_talk(greeting) == "small talk only (no turn over 5 words)"
    assert hygiene.small_talk([*greeting, ("User 1", "I just got back from my night shift.")]) is None
    assert hygiene.small_talk(greeting, hygiene.Limits(small_talk_words=3)) is None
    assert hygiene.small_talk([]) is None


def test_discriminator_on_known_answers():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(60, 8))
    same = rng.normal(size=(60, 8))
    shifted = rng.normal(loc=3.0, size=(60, 8))
    assert cv_accuracy(real, shifted)["accuracy"] >= 0.95
    assert abs(cv_accuracy(real, same)["accuracy"] - 0.5) <= 0.15
    small = cv_accuracy(real[:4], shifted[:4])
    assert small["accuracy"] is None and "fewer than" in small["reason"]


def test_grouped_discriminator_does_not_score_by_recognising_a_pair_it_trained_on():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(60, 64))
    centers = rng.normal(size=(10, 64))  # 10 "persona pairs", each a tight cluster drawn like the real rows
    clustered = np.vstack([c + 0.3 * rng.normal(size=(6, 64)) for c in centers])
    groups = [f"p{i // 6}" for i in range(60)]
    assert cv_accuracy(real, clustered)["accuracy"] >= 0.8  # folds share pairs: the clusters are memorised
    grouped = cv_accuracy(real, clustered, groups=groups)
    assert grouped["grouped"] and abs(grouped["accuracy"] - 0.5) <= 0.15  # unseen pairs: nothing to tell apart
    shifted = rng.normal(loc=3.0, size=(60, 64))
    assert cv_accuracy(real, shifted, groups=groups)["accuracy"] >= 0.95  # a real difference stays
    one = cv_accuracy(real, clustered, groups=["p0"] * 60)
    assert one["accuracy"] is None and "groups" in one["reason"]


def talk(n: int, text: str, mark: str = "", pair: str = "", **fields) -> list[dict]:
    """N six-turn conversations ("TEXT i k said at length"), pair_id from `pair` formatted with i, extra fields."""
    out = []
    for i in range(n):
        said = [{"speaker": f"User {1 + k % 2}", "content": f"{text} {i} {k} said at length{mark}"} for k in range(6)]
        out.append(
            {"profiles": PROFILES, **({"pair_id": pair.format(i=i)} if pair else {}), **fields, "messages": said}
        )
    return out


class MarkedEmbedder:
    """Random vectors, shifted far along every axis for a text that carries the marker 'zzz'."""

    def embed(self, texts):
        rng = np.random.default_rng(len(texts))
        return rng.normal(size=(len(texts), 8)) + np.array([[3.0 * ("zzz" in t)] for t in texts])


def test_matched_discriminator_compares_two_runs_at_the_smaller_runs_size():
    from convoforge.agents.persona.evaluate import matched_discriminator

    def rows(n, text):
        return talk(n, text)

    reference = rows(80, "real talk")
    found = matched_discriminator(MarkedEmbedder(), reference, rows(40, "zzz"), rows(12, "real talk"), draws=3)
    assert found["per_class"] == 12 and found["draws"] == 3  # the larger run sampled down to the smaller's count
    assert found["accuracy"] >= 0.9 and found["accuracy_other"] <= 0.75 and found["difference"] >= 0.2
    assert found["by_embedding"] >= 0.9 and found["by_embedding_other"] <= 0.75  # the marker is in the vectors
    none = matched_discriminator(MarkedEmbedder(), reference, rows(40, "zzz"), rows(3, "real talk"))
    assert none["per_class"] == 3 and none["accuracy"] is None and "difference" not in none  # too few to train
    assert none["by_statistics"] is None and none["by_statistics_other"] is None


def test_iteration_trend_compares_the_first_and_last_iteration_at_the_smaller_ones_count():
    from convoforge.agents.persona.evaluate import iteration_trend, iteration_trends

    def rows(n, text, iteration):
        return talk(n, text, pair=f"it{iteration}-p{{i}}", iteration=iteration)

    reference = rows(80, "real talk", 0)
    # the first iteration wins 40 marked conversations, the last 12 real-looking ones, the middle is not read
    winners = rows(40, "zzz", 0) + rows(5, "zzz", 1) + rows(12, "real talk", 2)
    found = iteration_trend(MarkedEmbedder(), reference, winners, draws=3)
    assert found["iterations"] == [0, 2] and found["conversations"] == [40, 12]
    assert found["per_class"] == 12 and found["draws"] == 3  # the first iteration sampled down to the last's count
    assert found["first"] >= 0.9 and found["last"] <= 0.75 and found["difference"] <= -0.2
    assert found["last_below_first"] is True and found["first_sd"] is not None
    few = iteration_trend(MarkedEmbedder(), reference, rows(40, "zzz", 0) + rows(3, "real talk", 2))
    assert few["per_class"] == 3 and few["difference"] is None and few["last_below_first"] is None  # too few
    one = iteration_trend(MarkedEmbedder(), reference, rows(40, "zzz", 1))
    assert one == {"iterations": [1], "reason": "fewer than two iterations have a conversation"}
    both = iteration_trends(MarkedEmbedder(), reference, winners, winners + rows(20, "zzz", 2), seed=0)
    assert both["every_candidate"]["conversations"] == [40, 32] and both["winners"]["per_class"] == 12
    alone = iteration_trends(MarkedEmbedder(), reference, winners, [])  # no candidates given: the winners alone
    assert set(alone) == {"winners", "winners_shared", "winners_shared_words"}
    shared = (alone["winners_shared"]["reason"], alone["winners_shared_words"]["reason"])
    assert all("of 1 personas" in why for why in shared)  # talk()'s rows share one persona pair


def test_a_loop_after_the_conversation_met_its_bounds_is_trimmed_off():
    looped = [*GOOD, GOOD[2], GOOD[3], GOOD[2], GOOD[3]]
    raw = "\n".join(f"{s}: {t}" for s, t in looped)
    cand = parse_candidate(raw, GenerationJob("p0", 0, PROFILES), 0, PersonaContext(min_turns=3, max_turns=7))
    assert cand.usable and [(t.speaker, t.content) for t in cand.turns] == GOOD
    assert cand.raw == raw  # what the model wrote stays in the record
    assert hygiene.first_degenerate(GOOD) is None
    echoed = [*GOOD, ("User 1", "That sounds lovely, bye for now!")]
    assert hygiene.first_degenerate(echoed) == 6
    assert hygiene.trim_degenerate_tail(echoed, 3) == 6 and hygiene.trim_degenerate_tail(echoed, 4) == 7


def test_discriminator_says_whether_what_is_said_or_how_gives_a_run_away():
    from convoforge.agents.persona.evaluate import discriminator

    def rows(n, text, mark=""):
        return talk(n, text, mark, pair="p{i}")

    reference = rows(60, "real talk")
    said = discriminator(MarkedEmbedder(), reference, rows(30, "zzz talk"))  # other vectors, the same statistics
    assert said["accuracy"] >= 0.9 and said["by_embedding"] >= 0.9 and said["by_statistics"] <= 0.65
    how = discriminator(MarkedEmbedder(), reference, rows(30, "real talk", "?"))  # the same vectors, all questions
    assert how["by_statistics"] >= 0.9 and how["by_embedding"] <= 0.65


def test_reference_conversations_that_fail_hygiene_are_not_on_the_real_side():
    from convoforge.agents.persona.evaluate import (
        clean_reference,
        discriminator,
        matched_discriminator,
        quality_report,
    )

    def rows(n, text):
        return talk(n, text, pair="p{i}")

    # half the real side carries a template slot the pipeline rejects in its own output (and a marker the
    # embedder shifts): shown as real, it would let the classifier tell the clean generated rows apart
    slotted = rows(60, "zzz hi [user 1's name]")
    reference = rows(60, "real talk") + slotted
    assert clean_reference(reference) == reference[:60]
    assert discriminator(MarkedEmbedder(), reference, rows(40, "real talk"))["accuracy"] >= 0.7  # shown as real
    report = quality_report(MarkedEmbedder(), rows(40, "real talk"), reference)
    assert report["generated"]["discriminator_accuracy"] <= 0.65, report["generated"]
    assert report["reference"]["discriminator_real"] == 60 and report["reference"]["placeholder_rate"] == 0.5
    none_clean = quality_report(MarkedEmbedder(), rows(40, "real talk"), slotted)["generated"]
    assert none_clean["discriminator_accuracy"] is None  # no clean real row: nothing to compare with
    matched = matched_discriminator(MarkedEmbedder(), reference, rows(40, "real talk"), rows(40, "zzz talk"), draws=2)
    assert matched["accuracy"] <= 0.65 and matched["accuracy_other"] >= 0.9


def test_over_runs_on_known_differences():
    from convoforge.agents.persona.evaluate import over_runs

    found = over_runs([-0.10, -0.12, -0.08], margin=-0.10)
    assert found["runs"] == 3 and found["mean"] == -0.1 and found["sd"] == 0.02
    # mean +- t(.975, 2 df) 4.303 x sd / sqrt(3)
    assert found["interval_95"] == pytest.approx([-0.1497, -0.0503], abs=1e-4)
    assert found["runs_reaching_margin"] == 2 and found["margin_p"] == pytest.approx(0.5)  # the mean is the margin
    assert over_runs([0.3, 0.31, 0.29], margin=0.2)["margin_p"] < 0.01  # a positive margin: beyond means above
    same = over_runs([0.25, 0.25])  # no spread between runs: the interval is the value, no t test
    assert same["interval_95"] == [0.25, 0.25] and same["t_test_p"] is None
    assert over_runs([-0.1])["reason"].startswith("one run") and over_runs([]) == {"runs": 0, "differences": []}
