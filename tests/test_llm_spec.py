"""Model spec strings and the scripted backend."""

from __future__ import annotations

import json

import pytest

from convoforge.errors import ModelSpecError
from convoforge.llm import GenParams, load_chat_model, parse_spec
from convoforge.llm.scripted import ScriptedChatModel


def test_parse_spec_splits_backend_ref_and_adapter():
    assert parse_spec("local:smollm2-135m") == ("local", "smollm2-135m", {})
    assert parse_spec("local:/m+adapter=/a") == ("local", "/m", {"adapter": "/a"})
    assert parse_spec("openai:gpt-4o-mini") == ("openai", "gpt-4o-mini", {})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("smollm2", "bad model spec 'smollm2'"),
        ("llama:x", "expected one of local:"),
        ("local:", "nothing after 'local:'"),
        ("local:x+lora=/a", "unknown option 'lora=/a'"),
    ],
)
def test_bad_specs_are_clear(spec, message):
    with pytest.raises(ModelSpecError, match=message):
        parse_spec(spec)


def test_missing_local_weights_are_clear(tmp_path):
    with pytest.raises(ModelSpecError, match="no model at"):
        load_chat_model(f"local:{tmp_path}/missing")
    (tmp_path / "weights.bin").write_text("x")
    with pytest.raises(ModelSpecError, match=r"not a \.gguf"):
        load_chat_model(f"local:{tmp_path}/weights.bin")
    with pytest.raises(ModelSpecError, match=r"no config\.json"):
        load_chat_model(f"local:{tmp_path}")


def test_missing_adapter_is_clear():
    from convoforge.llm.local import with_adapter

    with pytest.raises(ModelSpecError, match="no PEFT adapter"):
        with_adapter(object(), "/nonexistent/adapter")


def test_scripted_from_files_and_functions(tmp_path):
    path = tmp_path / "replies.json"
    path.write_text(json.dumps(["one", "two"]))
    model = load_chat_model(f"scripted:{path}")
    assert [model.chat("x").text for _ in range(3)] == ["one", "two", "one"]
    lines = tmp_path / "replies.txt"
    lines.write_text("a\n\nb\n")
    assert load_chat_model(f"scripted:{lines}").chat("x", n=2).texts == ["a", "b"]
    assert load_chat_model("scripted:echo").chat("hello there").text == "hello there"
    fn = load_chat_model("scripted:convoforge.llm.scripted:echo")
    assert fn.chat([{"role": "user", "content": "hey"}]).text == "hey"


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("missing.json", "no scripted replies file"),
        ("nomodule.x:f", "cannot import"),
        ("plain", "bad scripted spec"),
    ],
)
def test_bad_scripted_specs(ref, message):
    with pytest.raises(ModelSpecError, match=message):
        load_chat_model(f"scripted:{ref}")


def test_scripted_applies_stop_and_counts_requests():
    model = ScriptedChatModel(["Hello. World."])
    result = model.chat("q", GenParams(stop=(".",)))
    assert result.text == "Hello"
    assert result.usage.completion_tokens == 1
    assert len(model.requests) == 1


def test_torch_device_follows_convoforge_device(monkeypatch):
    import torch

    from convoforge.errors import ConvoforgeError
    from convoforge.llm.device import torch_device

    monkeypatch.setenv("CONVOFORGE_DEVICE", "cpu")
    assert torch_device() == "cpu"
    monkeypatch.setenv("CONVOFORGE_DEVICE", "auto")
    assert torch_device() == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("CONVOFORGE_DEVICE", "tpu")
    with pytest.raises(ConvoforgeError, match="must be auto, cpu, cuda or cuda:N, not 'tpu'"):
        torch_device()
    if not torch.cuda.is_available():
        monkeypatch.setenv("CONVOFORGE_DEVICE", "cuda")
        with pytest.raises(ConvoforgeError, match="torch sees no GPU"):
            torch_device()
