"""JSON-schema constrained decoding for the local backend (llguidance token masks, per row).

llguidance was measured against xgrammar on this CPU (`benchmarks/grammar_mask.py`): both
compute a row's mask in microseconds (21 vs 5 us per row and token; a SmolLM2 decoding step
takes ~10 ms), but llguidance is one 3 MB wheel with no dependencies while xgrammar's
declared dependencies pull triton (1 GB). Each schema is compiled once; each row of a batch
gets its own matcher, so rows with different schemas and rows with none share one `generate`.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from convoforge.errors import BackendError


def available() -> bool:
    """Whether llguidance is installed."""
    try:
        import llguidance  # noqa: F401
    except ImportError:
        return False
    return True


# compact JSON: one space after ':' and ',', no free whitespace (a small model otherwise pads with newlines)
_LAYOUT = {"item_separator": ", ", "key_separator": ": ", "whitespace_flexible": False}
MAX_STRING = 200  # characters of a string field without its own maxLength
MAX_ITEMS = 8  # items of an array without its own maxItems


def closed(schema: Any) -> Any:
    """A copy of schema whose objects take no undeclared keys, and whose strings and arrays have a bound.

    JSON Schema lets an object carry any extra key unless told otherwise, and under a mask a
    small model invents keys (`"reason_title": ...`) until it runs out of tokens.
    """
    if isinstance(schema, list):
        return [closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: closed(v) for k, v in schema.items()}
    if out.get("type") == "object" or "properties" in out:
        out.setdefault("additionalProperties", False)
    if out.get("type") == "string" and "enum" not in out and "const" not in out:
        out.setdefault("maxLength", MAX_STRING)
    if out.get("type") == "array":
        out.setdefault("maxItems", MAX_ITEMS)
    return out


class GrammarEngine:
    """Compiles JSON schemas for one tokenizer and hands out a fresh matcher per row."""

    def __init__(self, tokenizer: Any, vocab_size: int, eos_ids: list[int]) -> None:
        import llguidance
        import llguidance.hf

        self.vocab_size = vocab_size
        self.eos_ids = set(eos_ids)
        self.tokenizer = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size, eos_token=eos_ids[0])
        self.executor = llguidance.LLExecutor()
        self._lock = threading.Lock()
        self._grammars: dict[str, str] = {}  # schema JSON -> its checked grammar

    def compile(self, schema: dict) -> str:
        """The grammar of a JSON schema, built and checked once; a schema llguidance cannot take is a BackendError."""
        import llguidance

        key = json.dumps(schema)
        if key not in self._grammars:
            grammar = llguidance.LLMatcher.grammar_from_json_schema(json.dumps(closed(schema)), overrides=_LAYOUT)
            error = llguidance.LLMatcher.validate_grammar(grammar, self.tokenizer)
            if error and not error.startswith("WARNING"):
                raise BackendError(f"the JSON schema cannot be enforced: {error.splitlines()[0][:200]}")
            self._grammars[key] = grammar
        return self._grammars[key]

    def matcher(self, grammar: str) -> Any:
        """A matcher at the start of grammar."""
        import llguidance

        return llguidance.LLMatcher(self.tokenizer, grammar, log_level=0)


class RowGrammar:
    """A logits processor: rows with a grammar may only take tokens it allows; other rows are untouched.

    It runs before sampling. At each step it first feeds every constrained row the token
    sampled at the previous step, then masks the logits. A row that has ended (end of
    sequence, or a matcher that can go no further) is left alone from then on.
    """

    def __init__(self, engine: GrammarEngine, grammars: list[str | None]) -> None:
        import llguidance.torch as lt

        self.engine = engine
        self.matchers = [None if g is None else engine.matcher(g) for g in grammars]
        self.live = {i for i, m in enumerate(self.matchers) if m is not None}
        self.bitmask = lt.allocate_token_bitmask(len(grammars), engine.vocab_size)
        self.started = False
        self.mask_seconds = 0.0

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        """Advance each constrained row by its last token, then mask what its grammar forbids next."""
        import llguidance.torch as lt
        import torch

        t0 = time.perf_counter()
        if self.started:
            last = input_ids[:, -1].tolist()
            for i in list(self.live):
                token = last[i]
                if token in self.engine.eos_ids or not self.matchers[i].consume_token(token):
                    self.live.discard(i)
        self.started = True
        rows = sorted(i for i in self.live if not self.matchers[i].is_error())
        if rows:
            with self.engine._lock:
                lt.fill_next_token_bitmask_par(
                    self.engine.executor, [(self.matchers[i], i) for i in rows], self.bitmask
                )
            words = self.bitmask[rows]
            bits = (words.unsqueeze(-1) >> torch.arange(32, dtype=torch.int32)) & 1
            allowed = bits.reshape(len(rows), -1)[:, : scores.shape[-1]].bool()
            if scores.shape[-1] > allowed.shape[-1]:
                pad = torch.zeros(len(rows), scores.shape[-1] - allowed.shape[-1], dtype=torch.bool)
                allowed = torch.cat([allowed, pad], dim=1)
            empty = ~allowed.any(dim=1)  # a matcher with nothing left to allow: leave the row free
            allowed[empty] = True
            index = torch.tensor(rows, device=scores.device)
            sub = scores[index]
            scores[index] = sub.masked_fill(~allowed.to(scores.device), float("-inf"))
        self.mask_seconds += time.perf_counter() - t0
        return scores
