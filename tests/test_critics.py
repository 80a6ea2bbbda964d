"""Critic experts over good and malformed answers, the plug-in contract, and selection."""

from __future__ import annotations

import json

import pytest

from convoforge.critics import Candidate, Critic, Turn, Verdict, load_critic, load_critics, select
from convoforge.critics.faithfulness import LLMFaithfulnessExpert
from convoforge.critics.plugins import FunctionCritic, as_critic
from convoforge.critics.quality import QualityExpert
from convoforge.critics.toxicity import LLMToxicityExpert, ToxicityExpert
from convoforge.errors import ConvoforgeError
from convoforge.llm.scripted import ScriptedChatModel


def cand(cid: str, pair: str = "p0", lines: tuple[str, ...] = ("Hi there?", "Hello!"), error=None) -> Candidate:
    turns = [Turn(speaker=f"User {1 + i % 2}", content=t) for i, t in enumerate(lines)]
    return Candidate(
        id=cid,
        pair_id=pair,
        iteration=0,
        profiles={"User 1": ["I like tea."], "User 2": ["I have a dog."]},
        turns=turns,
        parse_error=error,
    )


MALFORMED = ["", "I think it is good", '{"score": 9, "reason": "x"}', '{"score": "five"}', '{"score": 3', "null"]


@pytest.mark.parametrize("answer", MALFORMED)
async def test_pointwise_quality_turns_malformed_answers_into_invalid_verdicts(answer):
    verdicts = await QualityExpert("depth").judge([cand("a")], ScriptedChatModel([answer]))
    assert len(verdicts) == 1 and not verdicts[0].valid
    assert verdicts[0].raw == answer and verdicts[0].error


async def test_pointwise_quality_scores_valid_answers():
    llm = ScriptedChatModel([json.dumps({"score": 5, "reason": "deep"})])
    (v,) = await QualityExpert("depth").judge([cand("a")], llm)
    assert v.valid and v.score == 1.0 and v.rationale == "deep" and v.critic == "quality_depth"
    assert "in more depth" in llm.requests[0][-1].content


async def test_pairwise_quality_counts_wins_and_survives_garbage():
    llm = ScriptedChatModel(['{"winner": 2, "reason": "b better"}', "garbage", "garbage", '{"winner": 1}'])
    expert = QualityExpert("coherency", mode="pairwise")
    verdicts = await expert.judge([cand("a"), cand("b"), cand("c"), cand("solo", pair="p1")], llm)
    by_id = dict(zip("abcs", verdicts, strict=True))
    assert by_id["b"].score == 1.0 and by_id["a"].score == 0.0  # a-vs-b went to b
    assert not by_id["c"].valid or by_id["c"].score is not None
    assert by_id["s"].label == "alone"
    assert "Which one of Conversation 1 and Conversation 2" in llm.requests[0][-1].content


@pytest.mark.parametrize("answer", ["", "yes it does", '{"contradicts": "maybe"}', "{"])
async def test_llm_faithfulness_malformed(answer):
    (v,) = await LLMFaithfulnessExpert().judge([cand("a")], ScriptedChatModel([answer]))
    assert not v.valid and v.raw == answer


async def test_llm_faithfulness_and_toxicity_valid():
    (v,) = await LLMFaithfulnessExpert().judge([cand("a")], ScriptedChatModel(['{"contradicts": true, "reason": "x"}']))
    assert v.passed is False and v.label == "unfaithful"
    (t,) = await LLMToxicityExpert().judge([cand("a")], ScriptedChatModel(['{"toxic": false}']))
    assert t.passed is True
    (bad,) = await LLMToxicityExpert().judge([cand("a")], ScriptedChatModel(["toxic!!"]))
    assert not bad.valid and bad.raw == "toxic!!"


async def test_toxicity_lexicon():
    expert = ToxicityExpert()
    clean, toxic, tricky = await expert.judge(
        [cand("a"), cand("b", lines=("You are an idiot.", "Shut up!")), cand("c", lines=("I love Scunthorpe", "ok"))],
        ScriptedChatModel(["unused"]),
    )
    assert clean.passed and toxic.passed is False and toxic.score == 1.0 and "idiot" in toxic.rationale
    assert tricky.passed  # word boundaries: no false hit inside a longer word


async def test_crashing_critic_gives_invalid_verdicts():
    class Broken(Critic):
        name = "broken"

        def judge_one(self, candidate, llm):
            raise RuntimeError("boom")

    (v,) = await Broken().judge([cand("a")], ScriptedChatModel(["x"]))
    assert not v.valid and "boom" in v.error


async def test_function_critic_and_coercion():
    def short(candidate) -> bool:
        """Passes short conversations."""
        return len(candidate.turns) < 5

    short.role = "filter"
    critic = as_critic(short, "short")
    assert isinstance(critic, FunctionCritic) and critic.role == "filter" and critic.description
    (v,) = await critic.judge([cand("a")], ScriptedChatModel(["x"]))
    assert v.passed is True and v.critic == "short"
    assert critic.coerce("text").valid is False


def test_loading_critics_by_name_and_import_path():
    assert load_critic("toxicity").role == "filter"
    assert load_critic("tests.persona_fakes:brevity").name == "brevity"
    assert load_critic("tests.persona_fakes:NoQuestions").role == "filter"
    with pytest.raises(ConvoforgeError, match="unknown critic"):
        load_critic("nope")
    with pytest.raises(ConvoforgeError, match="cannot import"):
        load_critic("tests.persona_fakes:Missing")
    with pytest.raises(ConvoforgeError, match="share the name"):
        load_critics(["toxicity", "toxicity"])
    with pytest.raises(ConvoforgeError, match="is not a critic"):
        as_critic(42, "x")


def test_a_critic_subclass_without_a_judge_is_refused_when_loaded():
    class Empty(Critic):
        name = "empty"

    with pytest.raises(ConvoforgeError, match="overrides neither judge_one"):
        as_critic(Empty, "tests:Empty")


def v(critic, score=None, passed=None, valid=True):
    return Verdict(critic=critic, score=score, passed=passed, valid=valid)


def test_selection_drops_filters_then_majority_vote():
    critics = [
        load_critic("quality_depth"),
        load_critic("quality_coherency"),
        load_critic("quality_likability"),
        load_critic("toxicity"),
    ]
    cands = [cand("a"), cand("b"), cand("c"), cand("d", error="too short")]
    verdicts = {
        "quality_depth": {"a": v("q", 0.5), "b": v("q", 1.0), "c": v("q", 1.0)},
        "quality_coherency": {"a": v("q", 0.9), "b": v("q", 0.2), "c": v("q", 1.0)},
        "quality_likability": {"a": v("q", 1.0), "b": v("q", valid=False), "c": v("q", 0.1)},
        "toxicity": {"a": v("t", passed=True), "b": v("t", passed=True), "c": v("t", passed=False)},
    }
    outcome = select(cands, verdicts, critics)["p0"]
    # c is dropped as toxic; a wins coherency and likability, b wins depth
    assert outcome.winner == "a" and outcome.votes == {"a": 2, "b": 1}
    assert outcome.reasons["c"] == "dropped by toxicity"
    assert outcome.reasons["d"].startswith("unparseable")
    assert outcome.reasons["b"].startswith("lost the vote")


def test_selection_with_everyone_dropped_has_no_winner():
    critics = [load_critic("toxicity")]
    outcome = select([cand("a")], {"toxicity": {"a": v("t", passed=False)}}, critics)["p0"]
    assert outcome.winner is None and "toxicity" in outcome.reasons["a"]


def test_settings_reach_the_named_critics_and_the_command_line_form_parses():
    from convoforge.app.cli import critic_settings

    options = critic_settings(["faithfulness.threshold=0.3", "realism.drop_share=0.85"], {"threshold": 0.2})
    assert options == {"faithfulness": {"threshold": 0.3}, "realism": {"drop_share": 0.85}}  # the option wins
    assert critic_settings(["faithfulness.unit=text"], {}) == {"faithfulness": {"unit": "text"}}  # not JSON: text
    faithful, realism = load_critics(["faithfulness", "realism"], options)
    assert faithful.threshold == 0.3 and realism.drop_share == 0.85
    with pytest.raises(ConvoforgeError, match="setting 'drop_share' takes a number, not True"):
        load_critics(["realism"], {"realism": {"drop_share": True}})
    with pytest.raises(ConvoforgeError, match="setting 'embedder' takes text, not 5"):
        load_critics(["faithfulness"], {"faithfulness": {"embedder": 5}})


class Wordy(Critic):
    """A user's critic with a setting: fails turns longer than `most` words."""

    name = "wordy"
    role = "filter"
    reads = ("turns",)

    def __init__(self, most: int = 20) -> None:
        self.most = most

    def judge_one(self, candidate, llm):
        longest = max(len(t.content.split()) for t in candidate.turns)
        return Verdict(critic=self.name, passed=longest <= self.most, score=float(longest))


WORDY = Wordy()  # an object, not a class: nothing to build, so nothing to set


class Levelled(Wordy):
    """A critic whose name is set when it is built, as the built-in quality experts' are."""

    def __init__(self, level: str = "strict", most: int = 20) -> None:
        super().__init__(most)
        self.name = f"wordy_{level}"


def test_settings_are_constructor_arguments_checked_against_their_type_hints(tmp_path):
    (wordy,) = load_critics(["tests.test_critics:Wordy"], {"wordy": {"most": 1}})
    assert wordy.most == 1 and not wordy.judge_one(cand("a", lines=("Hi there?", "Hello!")), None).passed
    with pytest.raises(ConvoforgeError, match=r"setting 'most' takes a whole number, not 1.5"):
        load_critics(["tests.test_critics:Wordy"], {"wordy": {"most": 1.5}})
    with pytest.raises(ConvoforgeError, match=r"critic 'tests\.test_critics:WORDY' is an object, not a class"):
        load_critics(["tests.test_critics:WORDY"], {"wordy": {"most": 1}})
    with pytest.raises(ConvoforgeError, match=r"critic 'tests\.test_critics:cand' is a function, not a class"):
        load_critics(["tests.test_critics:cand"], {"cand": {"pair": "x"}})
    (levelled,) = load_critics(["tests.test_critics:Levelled"], {"wordy_strict": {"most": 3}})  # keyed by its name
    assert (levelled.name, levelled.most) == ("wordy_strict", 3)
    # what a critic learns or builds while it runs is not a setting: the realism critic's fitted model
    with pytest.raises(ConvoforgeError, match=r"has no setting 'model' \(its settings: embedder, drop_share, least\)"):
        load_critics(["realism"], {"realism": {"model": 5}})
    with pytest.raises(ConvoforgeError, match="setting 'embedder' takes Embedder or text or null, not 5"):
        load_critics(["realism"], {"realism": {"embedder": 5}})
    (realism,) = load_critics(["realism"], {"realism": {"embedder": "all-minilm-l6-v2"}})
    assert realism.embedder == "all-minilm-l6-v2"
    from convoforge.llm.embeddings import Embedder

    given = object.__new__(Embedder)  # from Python, an object is checked as it is, not as JSON
    assert load_critics(["realism"], {"realism": {"embedder": given}})[0].embedder is given
    with pytest.raises(ConvoforgeError, match="""setting 'mode' takes one of "pointwise", "pairwise", not 'both'"""):
        load_critics(["quality_depth"], {"quality_depth": {"mode": "both"}})
    (depth,) = load_critics(["quality_depth"], {"quality_depth": {"mode": "pairwise"}})
    assert depth.mode == "pairwise"
    # a setting that builds state: the toxicity lexicon from a user's file, and a missing file is one line
    (tmp_path / "terms.txt").write_text("hello\n")
    (tox,) = load_critics(["toxicity"], {"toxicity": {"terms_file": str(tmp_path / "terms.txt")}})
    assert not tox.judge_one(cand("a"), None).passed and load_critic("toxicity").judge_one(cand("a"), None).passed
    with pytest.raises(ConvoforgeError, match=r"critic 'toxicity' cannot be built with .*No such file"):
        load_critics(["toxicity"], {"toxicity": {"terms_file": str(tmp_path / "none.txt")}})


def test_critics_list_shows_each_critic_s_settings_with_defaults():
    from convoforge.critics.plugins import list_critics

    rows = {r.name: r.settings for r in list_critics()}
    assert rows["realism"] == "embedder=null, drop_share=0.5, least=6"
    assert rows["quality_depth"] == 'mode="pointwise", method="auto"'
    assert rows["quality_depth_trained"] == 'mode="pointwise"'  # its method is its name
    assert rows["toxicity"] == "terms_file=null" and rows["faithfulness_llm"] == ""


def test_add_critic_adds_to_the_default_mixture_or_to_the_critics_named():
    from convoforge.critics.plugins import DEFAULT_CRITICS, critic_refs

    assert critic_refs([], ["realism"]) == [*DEFAULT_CRITICS, "realism"]
    assert critic_refs(["toxicity"], ["realism"]) == ["toxicity", "realism"]
    assert critic_refs(["toxicity"], []) == ["toxicity"]
