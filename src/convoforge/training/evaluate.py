"""Before/after measurements of tuned models: held-out LM loss, reward accuracy, policy quality, profiles."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from convoforge.datasets.metrics import fisher_exact, recited
from convoforge.errors import ConvoforgeError
from convoforge.llm.device import torch_device
from convoforge.training.lora import NEEDED, base_folder, load_reward_model, load_tokenizer, start_model
from convoforge.training.sampling import complete_all, generate, judge, passes, persona_pairs, split_rows


def lm_loss(base: str, adapter: Path | None, rows: list[dict], max_length: int = 1024) -> dict:
    """Mean assistant-token loss and perplexity of `messages` rows (the SFT loss, on held-out data)."""
    import torch
    from transformers import AutoModelForCausalLM

    from convoforge.llm.local import with_adapter

    _, folder, base_adapter = base_folder(base)
    tokenizer = load_tokenizer(folder)
    model = start_model(folder, base_adapter, AutoModelForCausalLM)
    if adapter is not None:
        if not (adapter / "adapter_config.json").is_file():
            raise ConvoforgeError(f"{adapter} is not a LoRA adapter folder")
        model = with_adapter(model, str(adapter))
    model.to(torch_device()).eval()
    total, tokens = 0.0, 0
    with torch.inference_mode():
        for row in rows:
            enc = tokenizer.apply_chat_template(
                row["messages"], return_dict=True, return_assistant_tokens_mask=True, tokenize=True
            )
            ids = torch.tensor(enc["input_ids"][:max_length])[None]
            mask = torch.tensor(enc["assistant_masks"][:max_length])[None]
            labels = ids.masked_fill(mask == 0, -100)
            n = int((labels[:, 1:] != -100).sum())
            if n == 0:
                continue
            out = model(input_ids=ids.to(model.device), labels=labels.to(model.device))
            total += float(out.loss) * n
            tokens += n
    if not tokens:
        raise ConvoforgeError("no assistant tokens to score")
    loss = total / tokens
    return {"loss": round(loss, 4), "perplexity": round(math.exp(loss), 3), "tokens": tokens, "rows": len(rows)}


def sft_report(data: Path, adapter: Path, base: str, limit: int | None, seed: int = 0) -> dict:
    """Held-out loss and perplexity before (base) and after (adapter) on an sft export's test split."""
    rows = split_rows(data, "test", limit, seed)
    before, after = lm_loss(base, None, rows), lm_loss(base, adapter, rows)
    return {"data": str(data), "adapter": str(adapter), "before": before, "after": after}


def reward_scores(model: Any, tokenizer: Any, conversations: list[list[dict]], max_length: int = 1024) -> list[float]:
    """The reward model's score of each whole conversation (prompt + answer)."""
    import torch

    scores = []
    with torch.inference_mode():
        for messages in conversations:
            text = tokenizer.apply_chat_template(messages, tokenize=False)
            enc = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_length, add_special_tokens=False)
            scores.append(float(model(**enc.to(model.device)).logits[0, 0]))
    return scores


def reward_report(data: Path, reward_model: Path, limit: int | None, seed: int = 0) -> dict:
    """Pairwise accuracy of a reward model on the held-out preference pairs."""
    rows = split_rows(data, "test", limit, seed)
    model, tokenizer = load_reward_model(reward_model)
    chosen = reward_scores(model, tokenizer, [r["prompt"] + r["chosen"] for r in rows])
    rejected = reward_scores(model, tokenizer, [r["prompt"] + r["rejected"] for r in rows])
    margins = [c - r for c, r in zip(chosen, rejected, strict=True)]
    return {
        "pairs": len(rows),
        "accuracy": round(sum(m > 0 for m in margins) / len(rows), 4),
        "mean_margin": round(statistics.fmean(margins), 4),
        "reward_model": str(reward_model),
    }


def policy_report(
    data: Path,
    policies: dict[str, str],
    reward_model: Path,
    critic_refs: list[str],
    critic_model: str,
    samples: int = 2,
    limit: int | None = 12,
    min_turns: int = 3,
    max_tokens: int = 320,
    seed: int = 0,
    critic_options: dict[str, dict] | None = None,
) -> dict:
    """Fresh generations of each policy on held-out persona pairs: reward-model score and critic acceptance.

    Acceptance: the candidate parses and passes every filter critic. Win share: how often the critics'
    selection (filters, then the quality experts' majority vote) picks that policy's candidate for a pair;
    None when no quality expert gave a valid vote.
    Recitation: the share of turns (of parsed, and of accepted, candidates) that copy a persona sentence
    word for word, so a rise in acceptance cannot hide a policy that recites its profiles.
    """
    from convoforge.agents.persona.context import PersonaContext
    from convoforge.critics.base import judging_once
    from convoforge.critics.plugins import load_critics
    from convoforge.critics.selection import select
    from convoforge.llm import load_chat_model

    critics = judging_once(load_critics(critic_refs, critic_options), "eval policy")  # fails before loading
    rows = persona_pairs(data, "test", limit, seed)
    ctx = PersonaContext(min_turns=min_turns)
    critic_llm = load_chat_model(critic_model)
    rm, rm_tokenizer = load_reward_model(reward_model)
    candidates, owner = [], {}
    for name, spec in policies.items():
        llm = critic_llm if spec == critic_model else load_chat_model(spec)
        for cand in generate(rows, llm, samples, ctx, max_tokens, seed, tag=f"{name}-"):
            candidates.append(cand)
            owner[cand.id] = name
    prompt = {r["pair_id"]: r["prompt"] for r in rows}
    scores = reward_scores(
        rm, rm_tokenizer, [prompt[c.pair_id] + [{"role": "assistant", "content": c.raw}] for c in candidates]
    )
    verdicts = judge(candidates, critics, critic_llm)
    passed = {c.id for c in candidates if passes(c, verdicts, critics)}
    winners = [o.winner for o in select(candidates, verdicts, critics).values() if o.winner]
    # with no valid quality vote the winner is merely the first candidate that passed (the base's come first)
    voted = any(v.valid for c in critics if c.role == "quality" for v in verdicts[c.name].values())
    report: dict[str, Any] = {"pairs": len(rows), "samples_per_pair": samples, "critics": [c.name for c in critics]}
    report["pair_ids"] = [r["pair_id"] for r in rows]
    if critic_options:
        report["critic_options"] = critic_options
    for name in policies:
        mine = [(c, s) for c, s in zip(candidates, scores, strict=True) if owner[c.id] == name]
        report[name] = {
            "spec": policies[name],
            "candidates": len(mine),
            "mean_reward": round(statistics.fmean(s for _, s in mine), 4),
            "reward_se": round(statistics.stdev(s for _, s in mine) / len(mine) ** 0.5, 4) if len(mine) > 1 else None,
            "parse_rate": round(sum(not c.parse_error for c, _ in mine) / len(mine), 4),
            "acceptance": round(sum(c.id in passed for c, _ in mine) / len(mine), 4),
            "win_share": round(sum(owner[w] == name for w in winners) / max(len(winners), 1), 4) if voted else None,
            "recitation": recitation_rate([c for c, _ in mine if not c.parse_error]),
            "accepted_recitation": recitation_rate([c for c, _ in mine if c.id in passed]),
            # per held-out pair, in the order of `pair_ids`: for a paired test with prompts as the unit
            "accepted_per_pair": [sum(c.pair_id == r["pair_id"] and c.id in passed for c, _ in mine) for r in rows],
        }
    base = [c for c in candidates if owner[c.id] == "base"]
    for name in policies.keys() - {"base"}:
        mine = [c for c in candidates if owner[c.id] == name]
        report[name]["vs_base_p"] = {  # two-sided Fisher exact on the rates, samples taken as independent
            rate: fisher_exact(sum(map(ok, mine)), len(mine), sum(map(ok, base)), len(base))
            for rate, ok in (("parse_rate", lambda c: not c.parse_error), ("acceptance", lambda c: c.id in passed))
        }
    return report


def recitation_rate(candidates: list[Any]) -> float | None:
    """Share of turns that recite one of the two persona sentences word for word; None with no turns."""
    turns = sum(len(c.turns) for c in candidates)
    if not turns:
        return None
    hits = sum(recited([t.content for t in c.turns], [a for p in c.profiles.values() for a in p]) for c in candidates)
    return round(hits / turns, 4)


def profile_report(
    data: Path, adapter: Path, base: str, limit: int | None, max_tokens: int = 96, seed: int = 0
) -> dict:
    """RLPF measurement: prediction accuracy and length of summaries before and after, on held-out users."""
    from convoforge.llm import GenParams, load_chat_model
    from convoforge.training.profile import ProfileReward, score_profiles

    rows = split_rows(data, "test", limit, seed)
    if not NEEDED["profile"] <= set(rows[0]):
        needed = ", ".join(sorted(NEEDED["profile"]))
        raise ConvoforgeError(f"{data} is not an `export --format profile` set (needs {needed})")
    reward = ProfileReward(rows[0]["catalog"])
    report: dict[str, Any] = {"users": len(rows)}
    params = GenParams(temperature=0, max_tokens=max_tokens)
    for name, spec in {"before": base, "after": f"{base}+adapter={adapter}"}.items():
        llm = load_chat_model(spec)
        summaries = [r.text.strip() for r in complete_all(llm, [r["prompt"] for r in rows], params)]
        report[name] = {**score_profiles(reward, summaries, rows), "example": summaries[0][:300]}
    return report
