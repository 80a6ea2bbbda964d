"""Shared fixtures: offline hub, the embedded models, the reference data."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from convoforge.llm.ports import free_port

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]


def reference_data() -> Path | None:
    """The reference data folder: CONVOFORGE_DATA, or ../shared/data beside the checkout."""
    env = os.environ.get("CONVOFORGE_DATA")
    path = Path(env) if env else ROOT.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = reference_data()
    if path is None:
        pytest.skip("reference data absent: set CONVOFORGE_DATA or place it at ../shared/data")
    return path


@pytest.fixture(scope="session")
def local_model():
    from convoforge.llm import load_chat_model

    return load_chat_model("local:smollm2-135m")


@pytest.fixture(scope="session")
def embedder():
    from convoforge.llm.embeddings import load_embedder

    return load_embedder()


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise TimeoutError(url)


@pytest.fixture
def serve():
    """Start `convoforge serve` for a model spec on 127.0.0.1; yields its base URL."""
    procs: list[subprocess.Popen] = []

    def start(spec: str) -> str:
        port = free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "convoforge",
                "--model",
                spec,
                "serve",
                "--port",
                str(port),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        procs.append(proc)
        base = f"http://127.0.0.1:{port}/v1"
        wait_http(f"{base}/models", proc)
        return base

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=20)
