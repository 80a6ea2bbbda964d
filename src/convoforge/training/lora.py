"""LoRA fine-tuning with TRL + PEFT on the local models: SFT, reward model, DPO (PERL-style)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from convoforge.errors import ConvoforgeError
from convoforge.llm.spec import parse_spec

CARD = """---
library_name: peft
base_model: {base}
tags: [convoforge, lora, {kind}, trl]
---

# convoforge {kind} LoRA adapter

LoRA adapter (r={lora_r}, alpha={lora_alpha}, attention projections, base frozen) trained with
TRL's {trainer} on `{data}` for {steps} steps (lr {lr}).

Training loss: first {first_loss}, last {last_loss}.

Use it: `convoforge --model local:{base_ref}+adapter=THIS_FOLDER ask "..."`.
"""


@dataclass
class LoraSettings:
    """What every LoRA run takes."""

    base: str = "local:smollm2-135m"
    steps: int = 50
    lr: float = 2e-4
    lora_r: int = 16
    lora_alpha: int = 32
    batch_size: int = 2
    max_length: int = 512
    beta: float = 0.1
    seed: int = 0


def base_folder(spec: str) -> tuple[str, Path]:
    """The transformers folder behind a local spec (adapters train on the converted weights)."""
    from convoforge.llm.local import resolve_weights

    backend, ref, options = parse_spec(spec)
    if backend != "local" or options:
        raise ConvoforgeError(f"--base must be a local model without an adapter, not {spec!r}")
    return ref, resolve_weights(ref)


def lora_config(s: LoraSettings, task: str) -> Any:
    """LoRA on the attention projections (PERL)."""
    from peft import LoraConfig

    return LoraConfig(
        r=s.lora_r,
        lora_alpha=s.lora_alpha,
        lora_dropout=0.0,
        task_type=task,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
    )


def to_prompt_completion(row: dict) -> dict:
    """Messages -> prompt (all before the last assistant turn) / completion (that turn)."""
    messages = row["messages"]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return {"prompt": messages[:last], "completion": [messages[last]]}


def common_args(s: LoraSettings, work: Path) -> dict:
    """Training arguments that hold on a CPU (TRL's defaults assume bf16 on a GPU)."""
    return {
        "output_dir": str(work),
        "max_steps": s.steps,
        "learning_rate": s.lr,
        "per_device_train_batch_size": s.batch_size,
        "use_cpu": True,
        "bf16": False,
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": max(s.steps // 2, 1),
        "save_total_limit": 1,
        "report_to": "none",
        "seed": s.seed,
        "disable_tqdm": True,
        "gradient_checkpointing": False,
    }


def train(kind: str, data: Path, out: Path, s: LoraSettings, force: bool = False, resume: bool = False) -> dict:
    """Run one of sft / reward / dpo and save the adapter (safetensors) with a model card."""
    import torch
    from datasets import load_from_disk
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    if out.exists() and not force:
        raise ConvoforgeError(f"{out} exists; pass --force to replace it")
    folder = data / "hf" if (data / "hf").is_dir() else data
    try:
        dataset = load_from_disk(str(folder))["train"]
    except (FileNotFoundError, KeyError) as exc:
        raise ConvoforgeError(f"{data} is not an exported training set (`convoforge export`)") from exc
    if kind not in {"sft", "reward", "dpo"}:
        raise ConvoforgeError(f"unknown training kind {kind!r}")
    needed = {"sft": {"messages"}, "reward": {"prompt", "chosen", "rejected"}, "dpo": {"prompt", "chosen", "rejected"}}
    if not needed[kind] <= set(dataset.column_names):
        raise ConvoforgeError(f"{data} has columns {dataset.column_names}; {kind} needs {sorted(needed[kind])}")
    if len(dataset) == 0:
        raise ConvoforgeError(f"{data} is empty")
    torch.manual_seed(s.seed)
    base_ref, base = base_folder(s.base)
    tokenizer = AutoTokenizer.from_pretrained(base)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    work = out.parent / f".{out.name}.checkpoints"
    if work.exists() and not resume:
        shutil.rmtree(work)
    import trl

    model_cls, task, config, extra = {
        "sft": (AutoModelForCausalLM, "CAUSAL_LM", trl.SFTConfig, {"completion_only_loss": True}),
        "reward": (AutoModelForSequenceClassification, "SEQ_CLS", trl.RewardConfig, {}),
        "dpo": (AutoModelForCausalLM, "CAUSAL_LM", trl.DPOConfig, {"beta": s.beta}),
    }[kind]
    trainer_cls = {"sft": trl.SFTTrainer, "reward": trl.RewardTrainer, "dpo": trl.DPOTrainer}[kind]
    if kind == "sft":
        dataset = dataset.map(to_prompt_completion, remove_columns=dataset.column_names)
    model = model_cls.from_pretrained(base, dtype=torch.float32, **({"num_labels": 1} if kind == "reward" else {}))
    if kind == "reward":
        model.config.pad_token_id = tokenizer.pad_token_id
    trainer = trainer_cls(
        model=model,
        args=config(**common_args(s, work), max_length=s.max_length, **extra),
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora_config(s, task),
    )
    checkpoint = resume and any(work.glob("checkpoint-*"))
    trainer.train(resume_from_checkpoint=True if checkpoint else None)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    tmp = out.parent / f".{out.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    trainer.model.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    summary = {
        "kind": kind,
        "base": s.base,
        "data": str(data),
        "rows": len(dataset),
        "steps": trainer.state.global_step,
        "first_loss": round(losses[0], 4) if losses else None,
        "last_loss": round(losses[-1], 4) if losses else None,
        "losses": [round(x, 4) for x in losses],
        **{k: v for k, v in asdict(s).items() if k != "base"},
    }
    (tmp / "convoforge_training.json").write_text(json.dumps(summary, indent=2))
    (tmp / "README.md").write_text(CARD.format(**{**summary, "base_ref": base_ref, "trainer": type(trainer).__name__}))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    shutil.rmtree(work, ignore_errors=True)
    return summary
