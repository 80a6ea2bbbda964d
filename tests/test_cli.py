"""The CLI: help with examples, one-line errors, real replies."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def cf(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "convoforge", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("command", [[], ["ask"], ["models"], ["serve"]])
def test_every_command_has_help_with_an_example(command):
    result = cf(*command, "--help")
    assert result.returncode == 0
    assert "Example" in result.stdout


GENERATOR = ["train", "generator", "--data", "spc.csv", "--out", "never"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "gpt4", "ask", "hi"], "bad model spec"),
        (["--model", "local:/no/such/model", "ask", "hi"], "no model at /no/such/model"),
        (
            ["--model", "openai:m", "--base-url", "http://127.0.0.1:9/v1", "ask", "hi"],
            "cannot reach",
        ),
        (
            ["train", "generator", "--data", "spc.csv", "--out", "never", "--rounds", "1", "--round-kind", "spin"],
            "--round-kind must be critics, real or a comma list",
        ),
        (
            ["train", "generator", "--data", "spc.csv", "--out", "never", "--rounds", "2", "--round-samples", "6,1"],
            "--round-samples must be a whole number >= 2 or a comma list",
        ),
        (
            ["train", "generator", "--data", "spc.csv", "--out", "never", "--rounds", "2", "--round-pairs", "4o"],
            "--round-pairs must be a whole number >= 1 or a comma list",
        ),
        (
            ["train", "generator", "--data", "spc.csv", "--out", "never", "--rounds", "2", "--drop-leaky-rounds", "3"],
            "--drop-leaky-rounds must list rounds between 1 and 2",
        ),
        (
            [*GENERATOR, "--critic-option", "realism.drop_share=0.8"],
            "--critic and --critic-option judge the critics rounds; this plan runs none",
        ),
        (
            [*GENERATOR, "--rounds", "1", "--round-kind", "real", "--add-critic", "realism"],
            "--critic and --critic-option judge the critics rounds; this plan runs none",
        ),
        (
            [*GENERATOR, "--rounds", "1", "--add-critic", "realism"],
            "critic 'realism' learns over a `generate personas` run (from its seed examples and earlier iterations); "
            "a train generator round judges one batch",
        ),
        (
            ["generate", "personas", "--tune-steps", "4", "--ray", "auto", "--out", "never"],
            "--tune-steps tunes the generator in this process; it does not run with --ray",
        ),
        (
            ["generate", "personas", "--tune-steps", "4", "--generator-model", "openai:m", "--out", "never"],
            "--tune-steps tunes a local generator (local:...), not 'openai:m'",
        ),
        (
            ["generate", "samples", "--data", "spc.csv", "--out", "never", "--critic", "realism"],
            "generate samples judges one batch, where it would have nothing to learn from and drop nothing",
        ),
        (
            [*GENERATOR, "--rounds", "1", "--critic-option", "toxicity.nope=1"],
            "critic 'toxicity' has no setting 'nope' (its settings: terms_file)",
        ),
        (["train", "dpo", "--data", "pairs", "--out", "never", "--realism"], "the realism reward is for rl"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(args, message):
    result = cf(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


@pytest.mark.parametrize("command", [["serve"], ["app"], ["vllm", "serve"]])
def test_a_taken_port_is_one_line_before_anything_starts(command):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        result = cf("--model", "scripted:echo", *command, "--port", port, timeout=60)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr  # no "serving ..." / "starting vLLM ..." first
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use; pick another --port" in lines[0]


def test_ask_with_scripted_model(tmp_path):
    replies = tmp_path / "r.json"
    replies.write_text(json.dumps(["scripted answer"]))
    result = cf("--model", f"scripted:{replies}", "ask", "anything")
    assert result.returncode == 0 and result.stdout.strip() == "scripted answer"


@pytest.mark.slow
def test_ask_and_models_with_the_embedded_model():
    result = cf("ask", "What is the capital of France?", "--temperature", "0", "--max-tokens", "12")
    assert result.returncode == 0 and "Paris" in result.stdout
    result = cf("models")
    assert result.returncode == 0 and "ok" in result.stdout and "all-minilm-l6-v2" in result.stdout


def test_global_options_may_follow_the_command():
    from convoforge.app.cli import hoist_global_options

    assert hoist_global_options(["ask", "Name a fruit.", "--model", "local:x", "-v"]) == [
        "--model",
        "local:x",
        "-v",
        "ask",
        "Name a fruit.",
    ]
    assert hoist_global_options(["eval", "crs", "--base-url=http://h/v1", "--k", "1"]) == [
        "--base-url=http://h/v1",
        "eval",
        "crs",
        "--k",
        "1",
    ]
    assert hoist_global_options(["ask", "--", "--model"]) == ["ask", "--", "--model"]
    result = cf("ask", "hi", "--model", "gpt4")  # read as the global option: its own one-line error
    assert result.returncode == 2 and "bad model spec" in result.stderr


def test_generate_samples_real_chosen_writes_dpo_pairs_and_keeps_an_existing_out(tmp_path):
    from tests.test_critics_eval import fixture_rows, write_spc

    spc = tmp_path / "spc.csv"
    write_spc(spc, fixture_rows(12))
    replies = tmp_path / "r.json"
    replies.write_text(json.dumps(["User 1: Hello there.\nUser 2: Hi."]))
    args = ["--model", f"scripted:{replies}", "generate", "samples", "--data", str(spc), "--real-chosen"]
    result = cf(*args, "--samples", "2", "--out", str(tmp_path / "pairs"))
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["train"] + found["test"] == 2 * found["pairs"] and (tmp_path / "pairs" / "README.md").is_file()
    again = cf(*args, "--out", str(tmp_path / "pairs"))
    assert again.returncode == 2 and "exists; pass --force" in again.stderr.strip()
