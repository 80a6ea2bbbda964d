"""The iteration trend by one classifier of the run: each winner scored out of fold, pooled over runs."""

import pytest
from sklearn.metrics import roc_auc_score

from convoforge.agents.persona.evaluate import (
    iteration_trends,
    persona_key,
    realness_scores,
    shared_trend,
    shared_trend_over_runs,
)
from tests.test_hygiene import MarkedEmbedder, talk


def people(rows: list[dict], start: int = 0) -> list[dict]:
    """The rows, each with a persona pair of its own and an id."""
    return [
        {**r, "id": f"r{start + i}", "profiles": {"User 1": [f"I am person {start + i}."], "User 2": ["I swim."]}}
        for i, r in enumerate(rows)
    ]


def run(first: str, last: str, start: int = 0) -> tuple[list[dict], list[dict]]:
    """Iteration 0 and 2, 20 candidates each: the winners of 0 say `first`, those of 2 `last`; losers 'zzz'."""
    cands = []
    for it, said in ((0, first), (2, last)):
        winners = talk(10, said, iteration=it, won=True)
        losers = talk(10, "zzz", iteration=it, won=False)
        cands += people(winners + losers, start + 100 * it)
    return [r for r in cands if r["won"]], cands


def test_realness_scores_put_generated_looking_rows_above_real_ones():
    reference = people(talk(60, "real talk"))
    real, generated = realness_scores(MarkedEmbedder(), reference, people(talk(30, "zzz"), 500))
    assert len(real) == 60 and len(generated) == 30  # every row scored, out of fold
    assert (generated > 0).mean() >= 0.9 and (real < 0).mean() >= 0.9


def test_the_words_judge_reads_words_that_the_features_judge_cannot_see():
    reference = people(talk(60, "real talk"))
    generated = people(talk(30, "qqq www"), 500)  # same shape and statistics; no 'zzz', so noise vectors both sides
    auc = {}
    for judge in ("words", "features"):
        real, gen = realness_scores(MarkedEmbedder(), reference, generated, judge=judge)
        auc[judge] = roc_auc_score([0] * len(real) + [1] * len(gen), [*real, *gen])
    assert auc["words"] >= 0.95 and auc["features"] <= 0.8
    with pytest.raises(ValueError, match="unknown judge 'tfidf'"):
        realness_scores(MarkedEmbedder(), reference, generated, judge="tfidf")


def test_persona_key_groups_a_pairs_rows_whatever_their_pair_id():
    a, b = {"profiles": {"User 1": ["x"]}, "pair_id": "it0-p1"}, {"profiles": {"User 1": ["x"]}, "pair_id": "it2-p7"}
    assert persona_key(a) == persona_key(b) != persona_key({"profiles": {"User 1": ["y"]}})


def test_shared_trend_reads_the_last_iterations_winners_as_more_real():
    reference = people(talk(80, "real talk"), 1000)
    winners, candidates = run("zzz", "real talk")
    found = shared_trend(MarkedEmbedder(), reference, winners, candidates)
    assert found["generated"] == 40 and found["iterations"] == [0, 2]
    first, last = found["per_iteration"]
    assert first["winners"] == last["winners"] == 10
    assert first["accuracy"] >= 0.9 and first["auc"] >= 0.9 and last["accuracy"] <= 0.75
    assert found["difference"] <= -0.2 and found["last_below_first"] is True and found["mannwhitney_p"] < 0.01
    assert found["last_over_first"] <= 0.1  # the last winners score as less generated than the first
    assert len(found["scores"]["first"]) == len(found["scores"]["last"]) == 10
    worse = shared_trend(MarkedEmbedder(), reference, *run("real talk", "zzz"))
    assert worse["difference"] >= 0.2 and worse["last_below_first"] is False
    words = shared_trend(MarkedEmbedder(), reference, winners, candidates, judge="words")
    assert words["judge"] == "word 1-2 gram TF-IDF" != found["judge"]
    assert words["difference"] <= -0.2 and words["last_over_first"] <= 0.1  # the marker is a word as well


def test_shared_trend_says_why_it_cannot_read_a_trend():
    reference = people(talk(80, "real talk"), 1000)
    winners, candidates = run("zzz", "real talk")
    assert shared_trend(MarkedEmbedder(), reference, winners[:4], candidates[:4])["reason"].startswith("too few rows")
    one = [w for w in winners if w["iteration"] == 0]  # one iteration has winners
    assert shared_trend(MarkedEmbedder(), reference, one, candidates)["reason"].startswith("fewer than two")
    same = [{**r, "profiles": {"User 1": ["I am one."]}} for r in candidates]  # one persona pair for every row
    assert "of 1 personas" in shared_trend(MarkedEmbedder(), reference, same, same)["reason"]


def test_shared_trend_over_runs_permutes_the_iteration_within_each_run():
    better = {"scores": {"first": [3.0, 2.0, 2.5, 4.0], "last": [-1.0, 0.0, -2.0, -0.5]}, "difference": -0.3}
    found = shared_trend_over_runs([better | {"last_below_first": True}] * 3, permutations=2000)
    assert found["runs"] == 3 and found["winners"] == [12, 12] and found["score_difference"] == -3.75
    assert found["last_over_first"] == 0  # every last winner scores below every first one
    assert found["permutation_p_below"] < 0.01 and found["permutation_p"] < 0.01 and found["last_below_first"] == 3
    assert found["accuracy"]["mean"] == -0.3  # over_runs of the runs' own accuracy differences
    same = {"scores": {"first": [1.0, 2.0, 3.0], "last": [3.0, 2.0, 1.0]}, "difference": 0.0}
    null = shared_trend_over_runs([same, same], permutations=2000)
    assert null["last_over_first"] == 0.5 and null["permutation_p"] > 0.9 and null["last_below_first"] == 0
    outlier = {"scores": {"first": [1.0, 2.0, 3.0, 4.0], "last": [0.0, 0.5, 0.8, 90.0]}, "difference": 0.0}
    ranked = shared_trend_over_runs([outlier], permutations=2000)  # one extreme score: ranks are not carried by it
    assert ranked["score_difference"] > 0 and ranked["last_over_first"] == 0.25
    assert shared_trend_over_runs([{"reason": "too few"}])["reason"].startswith("no run has")


def test_iteration_trends_carries_the_shared_trend():
    reference = people(talk(80, "real talk"), 1000)
    winners, candidates = run("zzz", "real talk")
    found = iteration_trends(MarkedEmbedder(), reference, winners, candidates)
    assert set(found) == {"winners", "every_candidate", "winners_shared", "winners_shared_words"}
    assert found["winners_shared"]["last_below_first"] is found["winners_shared_words"]["last_below_first"] is True
