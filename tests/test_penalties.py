"""OpenAI's frequency and presence penalties: the same numbers on every backend."""

from __future__ import annotations

import pytest
import torch

from convoforge.llm.local import _RowSampling
from convoforge.llm.openai_backend import OpenAIChatModel
from convoforge.llm.server import ChatRequest, _params
from convoforge.llm.types import GenParams, Message


def test_penalties_lower_each_token_by_its_count_in_the_reply_not_the_prompt():
    rows = [
        GenParams(temperature=1.0, frequency_penalty=0.5, presence_penalty=1.0),
        GenParams(temperature=1.0),
    ]
    # a prompt of 3 tokens (2 twice) then the reply: token 4 twice, token 7 once
    ids = torch.tensor([[2, 2, 3, 4, 7, 4], [2, 2, 3, 4, 7, 4]])
    scores = _RowSampling(rows, [None, None], prompt_len=3)(ids, torch.zeros(2, 10))
    want = torch.zeros(10)
    want[4], want[7] = -(0.5 * 2 + 1.0), -(0.5 * 1 + 1.0)
    assert torch.equal(scores[0], want)  # token 2, only in the prompt, is not penalised
    assert torch.equal(scores[1], torch.zeros(10))  # its batch-mate asked for none
    assert torch.equal(_RowSampling(rows, [None, None], prompt_len=6)(ids, torch.zeros(2, 10)), torch.zeros(2, 10))


def test_exempt_tokens_are_never_penalised():
    rows = [GenParams(temperature=1.0, frequency_penalty=1.0)] * 2
    ids = torch.tensor([[5, 4, 4, 9], [5, 4, 4, 9]])
    scores = _RowSampling(rows, [None, None], prompt_len=1, exempt=[[4], []])(ids, torch.zeros(2, 10))
    assert scores[0, 4] == 0.0 and scores[0, 9] == -1.0  # row 0 exempts token 4 (a speaker tag, say)
    assert scores[1, 4] == -2.0


def test_openai_and_the_server_carry_the_penalties(caplog):
    ask = [Message(role="user", content="hi")]
    model = OpenAIChatModel("m", base_url="http://127.0.0.1:9")
    sent = model._kwargs(ask, GenParams(frequency_penalty=0.4, presence_penalty=-0.2), 1)
    assert sent["frequency_penalty"] == 0.4 and sent["presence_penalty"] == -0.2
    assert "frequency_penalty" not in model._kwargs(ask, GenParams(), 1)  # none asked: none sent
    with caplog.at_level("WARNING"):
        exempt = GenParams(frequency_penalty=0.4, penalty_exempt=("User 1:",))
        assert "penalty_exempt" not in str(model._kwargs(ask, exempt, 1))
        model._kwargs(ask, exempt, 1)
    assert caplog.text.count("no penalty exemption") == 1  # said once, not per request
    got = _params(ChatRequest(model="m", messages=ask, frequency_penalty=0.3, presence_penalty=0.1))
    assert (got.frequency_penalty, got.presence_penalty) == (0.3, 0.1)


@pytest.mark.slow
def test_a_frequency_penalty_stops_the_real_model_repeating_itself(local_model):
    ask = "Write a list of ten fruits, one per line."

    def items(text: str) -> list[str]:
        return [line.split(".", 1)[-1].split("(")[0].strip().lower() for line in text.splitlines() if line.strip()]

    plain = items(local_model.chat(ask, temperature=0, max_tokens=40).text)
    penalised = items(local_model.chat(ask, temperature=0, max_tokens=40, frequency_penalty=2.0).text)
    assert len(set(plain)) < len(plain), plain  # greedy SmolLM2 names a fruit twice
    assert len(penalised) >= 4 and len(set(penalised)) == len(penalised), penalised


@pytest.mark.slow
def test_the_exempt_text_becomes_its_tokens_as_they_appear_mid_reply(local_model):
    ids = local_model._token_ids(("User 1:",))
    pieces = {local_model.tokenizer.decode([i]).strip() for i in ids}
    assert {"User", "1", ":"} <= pieces and not set(ids) & set(local_model.tokenizer.all_special_ids)
    assert local_model._token_ids(()) == []
