"""The lexical prior: token logit biases fitted from real vs own text, read back and applied by the backends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import convoforge
from convoforge.errors import ConvoforgeError, ModelSpecError
from convoforge.llm import parse_spec
from convoforge.llm.openai_backend import OpenAIChatModel
from convoforge.llm.spec import read_logit_bias
from convoforge.llm.types import GenParams, Message
from convoforge.training.lexical import (
    fit_logit_bias,
    real_and_own,
    stack_biases,
    train_lexical,
    without_profile_words,
)


class WordTokenizer:
    """Whitespace words (labels and newlines kept as tokens) numbered in order of first sight."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict:
        words = text.replace("\n", " \n ").replace("User 1:", " User1: ").replace("User 2:", " User2: ").split(" ")
        return {"input_ids": [self.ids.setdefault(w, len(self.ids)) for w in words if w]}

    def decode(self, ids: list[int]) -> str:
        names = {i: w for w, i in self.ids.items()}
        return "".join(names[i] for i in ids)


REAL = ["User 1: what is fun [ you ?\nUser 2: i like to swim"] * 30  # as many tokens as OWN's
OWN = ["User 1: what ! you are so glad\nUser 2: i am wonderful !"] * 30


def test_over_used_words_are_lowered_and_real_ones_raised():
    tok = WordTokenizer()
    bias = fit_logit_bias(REAL, OWN, tok)
    by_word = {tok.decode([i]): b for i, b in bias.items()}
    assert by_word["glad"] < 0 and by_word["wonderful"] < 0 and by_word["!"] < 0  # any token may be lowered
    assert by_word["fun"] > 0 and by_word["like"] > 0
    assert by_word["?"] > 0  # sentence marks are raised like words
    assert "[" not in by_word  # brackets are not: raising them invites placeholders ("[name]")
    assert not {"what", "you", "i"} & set(by_word)  # equally common on both sides: no bias
    assert not {"User1:", "User2:", "\n"} & set(by_word)  # transcript scaffolding is never biased
    assert max(abs(b) for b in bias.values()) <= 2.0


def test_a_further_round_adds_its_correction_to_the_prior():
    prior, step = {1: -1.5, 2: 0.5, 3: 0.3}, {1: -1.0, 2: -0.48, 4: 0.7}
    assert stack_biases(prior, step, clip=2.0) == {1: -2.0, 3: 0.3, 4: 0.7}  # clipped; 2 cancelled out (< .05)
    assert stack_biases(prior, {}, clip=1.0) == {1: -1.0, 2: 0.5, 3: 0.3}


def test_strength_rare_tokens_and_doubt():
    tok = WordTokenizer()
    full, quarter = fit_logit_bias(REAL, OWN, tok, clip=9), fit_logit_bias(REAL, OWN, tok, alpha=0.25, clip=9)
    assert set(quarter) == set(full) and max(full.values()) > 2  # alpha scales the biases, not which tokens
    assert all(quarter[t] == pytest.approx(full[t] / 4, abs=1e-3) for t in full)
    assert max(fit_logit_bias(REAL, OWN, tok, clip=1).values()) == 1.0
    assert fit_logit_bias(REAL[:3], OWN[:3], tok) == {}  # 3 sightings each: below min_count
    mixed = fit_logit_bias(REAL[:3] + OWN[:3], OWN[:3] + REAL[:3], tok, min_count=1)
    assert mixed == {}  # the same text on both sides: no token is sure


def test_fit_needs_both_sides():
    with pytest.raises(ConvoforgeError, match="needs real and own texts"):
        fit_logit_bias([], OWN, WordTokenizer())


def _export(tmp_path, rows: list[dict]):
    from datasets import Dataset, DatasetDict

    from convoforge.datasets.records import write_dataset

    folder = tmp_path / "pairs"
    write_dataset(DatasetDict(train=Dataset.from_list(rows), test=Dataset.from_list(rows[:1])), "# pairs\n", folder)
    return folder


def _pair(real: str, own: str) -> dict:
    return {
        "prompt": [{"role": "user", "content": "p"}],
        "chosen": [{"role": "assistant", "content": real}],
        "rejected": [{"role": "assistant", "content": own}],
    }


def test_real_and_own_reads_a_real_chosen_export_without_placeholders(tmp_path):
    leaky = "User 1: Hi, I'm [User 1's name].\nUser 2: Hello."
    folder = _export(tmp_path, [_pair(REAL[0], OWN[0]), _pair(REAL[0], OWN[0] + " x"), _pair(leaky, OWN[0])])
    real, own = real_and_own([folder])
    assert real == [REAL[0]]  # each real conversation once; SPC's placeholders left out
    assert len(own) == 4 and OWN[0] + " x" in own  # every own sample, both splits


PROFILES = {"User 1": ["I am a painter.", "I have two dogs."], "User 2": ["I like to swim in the lake."]}


def test_profile_words_are_taken_out_with_their_inflections():
    text = "User 1: I love painting and my dog. Painters are fun!\nUser 2: I like swimming, what about you?"
    kept = without_profile_words(text, PROFILES, keep=frozenset({"like"}))  # "like": in many pairs' profiles
    assert kept == "User 1: I love and my. are fun!\nUser 2: I like, what about you?"
    assert without_profile_words(text, PROFILES).endswith("User 2: I, what about you?")
    assert without_profile_words(text, {}) == text and without_profile_words(text, None) == text
    assert without_profile_words("User 1: I am here.", PROFILES) == "User 1: I am here."  # stop words stay


def test_real_and_own_fits_style_not_the_personas_topics(tmp_path):
    row = {
        **_pair("User 1: I like to paint dogs, fun!", "User 1: So glad, painter!"),
        "profiles": PROFILES,
        "pair_id": "a",
    }
    others = [  # four more pairs: "like" is in every pair's profiles (style), "painter" in one of five (topic)
        {
            **_pair(f"User 1: real {i}", f"User 1: own {i}"),
            "profiles": {"User 1": [f"I like car {i}."]},
            "pair_id": str(i),
        }
        for i in range(4)
    ]
    folder = _export(tmp_path, [row, *others])
    real, own = real_and_own([folder])
    assert real[0] == "User 1: I like to, fun!" and own[0] == "User 1: So glad,!"
    real, own = real_and_own([folder], keep_profile_words=True)
    assert real[0] == "User 1: I like to paint dogs, fun!" and own[0] == "User 1: So glad, painter!"


def test_real_and_own_refuses_other_exports(tmp_path):
    folder = _export(
        tmp_path,
        [{"prompt": [{"role": "user", "content": "p"}], "completion": [{"role": "assistant", "content": "c"}]}],
    )
    with pytest.raises(ConvoforgeError, match="not a preference export"):
        real_and_own([folder])


def test_train_lexical_keeps_what_exists_and_needs_a_local_base(tmp_path):
    out = tmp_path / "bias.json"
    out.write_text("mine")
    with pytest.raises(ConvoforgeError, match="exists: pass --force"):
        train_lexical([tmp_path], out, "local:smollm2-135m")
    assert out.read_text() == "mine"
    with pytest.raises(ConvoforgeError, match="must be a local model"):
        train_lexical([tmp_path], tmp_path / "new.json", "openai:gpt-4o-mini")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"base": "local:other-model", "logit_bias": {"5": -1.0}}))
    with pytest.raises(ConvoforgeError, match="fitted for local:other-model, not --base local:smollm2-135m"):
        train_lexical([tmp_path], tmp_path / "round2.json", "local:smollm2-135m", prior=str(other))


def test_read_logit_bias_and_its_errors(tmp_path):
    good = tmp_path / "b.json"
    good.write_text(json.dumps({"tokens": 2, "logit_bias": {"5": -1.5, "9": 0.25}}))
    assert read_logit_bias(str(good)) == {5: -1.5, 9: 0.25}
    for text, message in [
        ("not json", "is not a logit-bias JSON"),
        (json.dumps({"bias": {}}), "is not a logit-bias JSON"),
        (json.dumps({"logit_bias": {"x": 1}}), "is not a logit-bias JSON"),
        (json.dumps({"logit_bias": {"3": 500}}), "within -100..100"),
    ]:
        good.write_text(text)
        with pytest.raises(ModelSpecError, match=message):
            read_logit_bias(str(good))
    with pytest.raises(ModelSpecError, match="no logit-bias file"):
        read_logit_bias(str(tmp_path / "none.json"))


def test_the_shipped_prior_loads_by_name_and_is_the_default_generators():
    from convoforge.app.persona_cli import default_generator
    from convoforge.llm.spec import SHIPPED_BIASES

    bias = read_logit_bias("persona-generator")
    assert 100 <= len(bias) <= 400 and all(0 <= k < 49152 and 0.05 <= abs(v) <= 2 for k, v in bias.items())
    assert min(bias.values()) < 0 < max(bias.values())  # some words lowered, some raised
    card = (Path(convoforge.__file__).parent / SHIPPED_BIASES["persona-generator"]).with_suffix(".md").read_text()
    assert "train lexical" in card and "generate samples" in card and "## Figures" in card
    assert default_generator("local:smollm2-135m").endswith("+adapter=persona-generator+bias=persona-generator")
    assert default_generator("openai:m") == "openai:m"
    with pytest.raises(ModelSpecError, match="no logit-bias file"):
        read_logit_bias("persona-critic")  # only shipped names resolve


def test_specs_take_a_bias_and_openai_sends_it(tmp_path):
    assert parse_spec("local:m+adapter=/a+bias=/b.json") == ("local", "m", {"adapter": "/a", "bias": "/b.json"})
    assert parse_spec("openai:m+bias=/b.json")[2] == {"bias": "/b.json"}
    with pytest.raises(ModelSpecError, match="unknown option 'bias=x'"):
        parse_spec("scripted:echo+bias=x")
    model = OpenAIChatModel("m", base_url="http://127.0.0.1:9", logit_bias={7: -2.0})
    kwargs = model._kwargs([Message(role="user", content="hi")], GenParams(), 1)
    assert kwargs["logit_bias"] == {"7": -2.0}
    assert "logit_bias" not in OpenAIChatModel("m", base_url="http://127.0.0.1:9")._kwargs([], GenParams(), 1)


@pytest.mark.slow
def test_the_local_backend_applies_the_bias(tmp_path, local_model):
    from convoforge.llm import load_chat_model

    paris = local_model.tokenizer(" Paris", add_special_tokens=False)["input_ids"]
    path = tmp_path / "no-paris.json"
    path.write_text(json.dumps({"logit_bias": {str(i): -100 for i in paris}}))
    ask = "What is the capital of France?"
    assert "Paris" in local_model.chat(ask, temperature=0, max_tokens=16).text
    biased = load_chat_model(f"local:smollm2-135m+bias={path}")
    assert biased.name.endswith(f"+bias={path}") and biased is not local_model
    assert "Paris" not in biased.chat(ask, temperature=0, max_tokens=16).text
    wide = tmp_path / "wide.json"
    wide.write_text(json.dumps({"logit_bias": {"999999": -1}}))
    with pytest.raises(ModelSpecError, match="outside smollm2-135m's"):
        load_chat_model(f"local:smollm2-135m+bias={wide}")


@pytest.mark.slow
def test_train_lexical_writes_the_biases_and_a_card(tmp_path):
    real = "User 1: Hi! What do you like to do for fun?\nUser 2: I like to read. What about you?"
    own = "User 1: I'm glad you're here, you're wonderful!\nUser 2: I'm so glad, you're wonderful too!"
    folder = _export(tmp_path, [_pair(real.replace("read", f"read {i}"), own) for i in range(30)])
    out = tmp_path / "prior" / "bias.json"
    fit = {"alpha": 1.0, "min_count": 20, "min_z": 2.0, "clip": 2.0}
    summary = train_lexical([folder], out, "local:smollm2-135m", **fit)
    assert summary["real"] == 30 and summary["own"] == 31 and summary["tokens"] > 0
    assert "glad" in [w.strip() for w in summary["lowered"]] and "like" in [w.strip() for w in summary["raised"]]
    bias = read_logit_bias(str(out))
    assert len(bias) == summary["tokens"] and all(abs(v) <= 2.0 for v in bias.values())
    card = out.with_suffix(".md").read_text()
    assert f"+bias={out}" in card and f"--data {folder}" in card and "--min-z 2.0" in card
    assert "A first round" in card and "--prior" not in card
    # a second round over the same samples, written over its own prior: the prior is read first, then stacked
    again = train_lexical([folder], out, "local:smollm2-135m", prior=str(out), force=True, **fit)
    stacked = read_logit_bias(str(out))
    assert again["prior"] == str(out) and again["fitted"] == summary["tokens"] and set(stacked) == set(bias)
    assert all(stacked[t] == pytest.approx(max(-2.0, min(2.0, 2 * bias[t])), abs=1e-3) for t in bias)
    card = out.with_suffix(".md").read_text()
    assert f"--prior {out}" in card and f"Round on top of: `{out}` ({len(bias)} tokens" in card
