"""Token-mask cost of the two JSON-schema grammar engines on the embedded tokenizer (one JSON line).

For each engine that is installed: grammar compile time, and the time to compute one row's
token mask and advance the matcher by one token, over answers of the critics' schemas.

    python benchmarks/grammar_mask.py [--rows 8] [--repeats 20]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import time

from pydantic import BaseModel, Field


class Score(BaseModel):
    score: int = Field(ge=1, le=5)
    reason: str = ""


class Decision(BaseModel):
    action: str
    query: str = ""
    reason: str = ""


ANSWERS = [
    (Score, '{"score": 4, "reason": "The speakers answer each other and stay on topic."}'),
    (Decision, '{"action": "recommend", "query": "funny animated films for kids", "reason": "asked for a film"}'),
]


def llguidance_cost(tok, vocab: int, rows: int, repeats: int) -> dict:
    import llguidance
    import llguidance.hf
    import llguidance.torch as lt
    import torch

    started = time.perf_counter()
    lltok = llguidance.hf.from_tokenizer(tok, n_vocab=vocab)
    tokenizer_s = time.perf_counter() - started
    executor = llguidance.LLExecutor()
    compile_s, step_s = [], []
    for schema, answer in ANSWERS:
        ids = tok(answer, add_special_tokens=False)["input_ids"]
        t0 = time.perf_counter()
        grammar = llguidance.LLMatcher.grammar_from_json_schema(json.dumps(schema.model_json_schema()))
        compile_s.append(time.perf_counter() - t0)
        bitmask = lt.allocate_token_bitmask(rows, vocab)
        for _ in range(repeats):
            matchers = [llguidance.LLMatcher(lltok, grammar) for _ in range(rows)]
            for token in ids:
                t0 = time.perf_counter()
                lt.fill_next_token_bitmask_par(executor, [(m, i) for i, m in enumerate(matchers)], bitmask)
                for m in matchers:
                    m.consume_token(token)
                step_s.append((time.perf_counter() - t0) / rows)
            assert all(not m.is_error() for m in matchers), matchers[0].get_error()
    del torch
    return {
        "tokenizer_setup_s": round(tokenizer_s, 3),
        "compile_ms": round(1000 * statistics.mean(compile_s), 2),
        "mask_us_per_row_token": round(1e6 * statistics.median(step_s), 1),
    }


def xgrammar_cost(tok, vocab: int, rows: int, repeats: int) -> dict:
    import torch
    import xgrammar as xgr

    started = time.perf_counter()
    info = xgr.TokenizerInfo.from_huggingface(tok, vocab_size=vocab)
    compiler = xgr.GrammarCompiler(info)
    tokenizer_s = time.perf_counter() - started
    compile_s, step_s = [], []
    for schema, answer in ANSWERS:
        ids = tok(answer, add_special_tokens=False)["input_ids"]
        t0 = time.perf_counter()
        compiled = compiler.compile_json_schema(schema)
        compile_s.append(time.perf_counter() - t0)
        bitmask = xgr.allocate_token_bitmask(rows, vocab)
        for _ in range(repeats):
            matchers = [xgr.GrammarMatcher(compiled) for _ in range(rows)]
            for token in ids:
                t0 = time.perf_counter()
                for i, m in enumerate(matchers):
                    m.fill_next_token_bitmask(bitmask, i)
                    m.accept_token(token)
                step_s.append((time.perf_counter() - t0) / rows)
    del torch
    return {
        "tokenizer_setup_s": round(tokenizer_s, 3),
        "compile_ms": round(1000 * statistics.mean(compile_s), 2),
        "mask_us_per_row_token": round(1e6 * statistics.median(step_s), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    from transformers import AutoConfig, AutoTokenizer

    from convoforge.llm.local import resolve_weights

    folder = resolve_weights("smollm2-135m")
    tok = AutoTokenizer.from_pretrained(folder)
    vocab = AutoConfig.from_pretrained(folder).vocab_size
    out: dict = {"rows": args.rows, "vocab": vocab}
    for name, fn in (("llguidance", llguidance_cost), ("xgrammar", xgrammar_cost)):
        out[name] = fn(tok, vocab, args.rows, args.repeats) if importlib.util.find_spec(name) else "not installed"
    print(json.dumps(out))


if __name__ == "__main__":
    main()
