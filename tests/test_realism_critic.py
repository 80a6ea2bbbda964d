"""The realism expert, a critic that learns over the run, on fixtures where the answer is known."""

from __future__ import annotations

import numpy as np

from convoforge.agents.persona.realism import RealismExpert
from convoforge.critics import Candidate, Turn, load_critic, select
from tests.test_hygiene import MarkedEmbedder  # 'zzz' is the generated tell

PROFILES = {"User 1": ["I like tea."], "User 2": ["I have a dog."]}


def row(i: int, text: str, pair: str = "") -> dict:
    said = [{"speaker": f"User {1 + k % 2}", "content": f"{text} {i} {k} said at some length"} for k in range(6)]
    return {"profiles": PROFILES, "pair_id": pair or f"p{i}", "messages": said}


def cand(cid: str, text: str) -> Candidate:
    turns = [Turn(speaker=f"User {1 + k % 2}", content=f"{text} {k} said at some length") for k in range(6)]
    return Candidate(id=cid, pair_id=cid, iteration=1, profiles=PROFILES, turns=turns)


async def test_realism_learns_the_tell_of_earlier_candidates_and_drops_what_carries_it():
    critic = RealismExpert(embedder=MarkedEmbedder())
    learned = critic.learn([row(i, "real talk") for i in range(30)], [row(i, "zzz talk") for i in range(40)])
    assert learned["real"] == 30 and learned["generated"] == 40 and learned["accuracy"] >= 0.9
    real_like, generated_like = cand("a", "real talk"), cand("b", "zzz talk")
    verdicts = await critic.judge([real_like, generated_like], llm=None)
    assert [v.passed for v in verdicts] == [True, False]
    assert verdicts[0].score > critic.threshold > verdicts[1].score
    assert [v.label for v in verdicts] == ["reads real", "reads generated"]
    outcome = select([real_like, generated_like], {"realism": {"a": verdicts[0], "b": verdicts[1]}}, [critic])
    assert outcome["a"].winner == "a" and outcome["b"].reasons["b"] == "dropped by realism"


async def test_realism_with_too_little_to_learn_from_drops_nothing_and_says_why():
    critic = RealismExpert(embedder=MarkedEmbedder())
    learned = critic.learn([row(i, "real talk") for i in range(30)], [row(i, "zzz talk") for i in range(5)])
    assert "accuracy" not in learned and "fewer than 6" in learned["reason"]
    verdicts = await critic.judge([cand("b", "zzz talk")], llm=None)
    assert verdicts[0].valid and verdicts[0].passed is None and verdicts[0].label == "not fitted"
    assert select([cand("b", "zzz talk")], {"realism": {"b": verdicts[0]}}, [critic])["b"].winner == "b"


def test_realism_drop_share_sets_how_much_of_the_earlier_output_it_would_drop():
    real = [row(i, "real talk") for i in range(30)]
    generated = [row(i, "zzz talk" if i % 2 else "real talk", pair=f"g{i}") for i in range(40)]
    shares = {}
    for share in (0.2, 0.8):
        critic = RealismExpert(embedder=MarkedEmbedder(), drop_share=share)
        critic.learn(real, generated)
        from convoforge.agents.persona.evaluate import conversation_features

        scores = critic.model.decision_function(conversation_features(critic.embedder, generated))
        shares[share] = float(np.mean(scores < critic.threshold))
    assert abs(shares[0.2] - 0.2) <= 0.05 and abs(shares[0.8] - 0.8) <= 0.05


def test_realism_is_found_by_name_through_convoforge_s_own_entry_point():
    critic = load_critic("realism")
    assert isinstance(critic, RealismExpert) and critic.role == "filter" and callable(critic.learn)


async def test_a_critic_whose_learn_fails_gives_invalid_verdicts_instead_of_ending_the_run():
    from convoforge.agents.persona.graph import learn_and_judge
    from convoforge.critics.selection import failed_filters

    class Broken(RealismExpert):
        name = "broken"

        def learn(self, real, generated):
            raise ValueError("no data like this")

    critic = Broken(embedder=MarkedEmbedder())
    state = {"seed_examples": [{"profiles": PROFILES, "turns": [["User 1", "Hi there."]]}], "accepted": []}
    cands, verdicts = [cand("a", "real talk")], {}
    learned = await learn_and_judge([critic], None, state, cands, verdicts)
    assert learned == {"broken": {"error": "learn failed: ValueError: no data like this"}}
    verdict = verdicts["broken"]["a"]
    assert not verdict.valid and "no data like this" in verdict.error
    assert failed_filters(cands[0], verdicts, [critic]) == []  # an invalid verdict drops nothing
