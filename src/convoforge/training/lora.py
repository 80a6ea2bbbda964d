"""LoRA fine-tuning with TRL + PEFT on the local models: SFT, reward model, DPO, RL and RLPF (PERL-style)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from convoforge.errors import ConvoforgeError
from convoforge.llm.device import torch_device
from convoforge.llm.local import merged, quiet_peft
from convoforge.llm.spec import parse_spec

CARD = """---
library_name: peft
base_model: {base}
tags: [convoforge, lora, {kind}, trl]
---

# convoforge {kind} LoRA adapter

LoRA adapter (r={lora_r}, alpha={lora_alpha}, attention projections, base frozen) trained with
TRL's {trainer} on `{data}` ({rows} rows) for {steps} steps (lr {lr}).

Training loss: first {first_loss}, last {last_loss}. {reward_line}

Use it: `convoforge --model local:{base_ref}+adapter=THIS_FOLDER ask "..."`.
"""

# SmolLM2's own chat template with `{% generation %}` markers around assistant turns: it renders the same
# text, and lets TRL mask everything but the assistant's tokens (assistant-only loss over every turn).
TRAIN_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\n' }}{% generation %}"
    "{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
KINDS = ("sft", "reward", "dpo", "rl", "profile")
NEEDED = {
    "sft": {"messages"},
    "reward": {"prompt", "chosen", "rejected"},
    "dpo": {"prompt", "chosen", "rejected"},
    "rl": {"prompt"},
    "profile": {"prompt", "history", "held_out", "catalog"},
}


@dataclass
class LoraSettings:
    """What every LoRA run takes (generations, new tokens and kl only matter to rl and profile)."""

    base: str = "local:smollm2-135m"
    steps: int = 50
    lr: float = 2e-4
    lora_r: int = 16
    lora_alpha: int = 32
    batch_size: int = 2
    accumulation: int = 1  # rows of a step are split into this many passes (less memory, the same step)
    max_length: int = 512
    beta: float = 0.1
    sft_weight: float = 0.0
    seed: int = 0
    generations: int = 4
    new_tokens: int = 96
    kl: float = 0.05
    temperature: float = 0.9

    def __post_init__(self) -> None:
        if self.accumulation < 1 or self.batch_size % self.accumulation:
            raise ConvoforgeError(f"batch size {self.batch_size} does not split into {self.accumulation} passes")


def base_folder(spec: str) -> tuple[str, Path, str | None]:
    """The transformers folder behind a local spec (adapters train on the converted weights) and its adapter."""
    from convoforge.llm.local import adapter_chain, resolve_weights

    backend, ref, options = parse_spec(spec)
    if backend != "local":
        raise ConvoforgeError(f"--base must be a local model (local:NAME[+adapter=DIR]), not {spec!r}")
    adapter = options.get("adapter")
    if adapter:
        adapter_chain(adapter)  # a clear error for a missing adapter before any loading
    return ref, resolve_weights(ref), adapter


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


def start_model(folder: Path, adapter: str | None, model_cls: Any, **kwargs: Any) -> Any:
    """The base weights in float32 with the adapter chain underneath merged in: where training and eval start."""
    import torch

    from convoforge.llm.local import with_adapter

    model = model_cls.from_pretrained(folder, dtype=torch.float32, **kwargs)
    return with_adapter(model, adapter) if adapter else model


def load_tokenizer(folder: Path) -> Any:
    """The base tokenizer with a pad token and, where it renders the same text, the marked training template."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    probe = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    if tokenizer.chat_template and tokenizer.apply_chat_template(
        probe, tokenize=False
    ) == tokenizer.apply_chat_template(probe, tokenize=False, chat_template=TRAIN_TEMPLATE):
        tokenizer.chat_template = TRAIN_TEMPLATE
    return tokenizer


def load_split(data: Path, split: str = "train") -> Any:
    """One split of an exported training set (`convoforge export`)."""
    from convoforge.datasets.records import read_dataset

    try:
        splits = read_dataset(data)
    except ConvoforgeError:
        splits = {}
    if split not in splits:
        raise ConvoforgeError(f"{data} is not an exported training set with a {split} split (`convoforge export`)")
    return splits[split]


def load_reward_model(folder: Path) -> tuple[Any, Any]:
    """A LoRA reward model from `train reward`, merged into its base for scoring."""
    from transformers import AutoModelForSequenceClassification

    meta_file = folder / "convoforge_training.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    if meta.get("kind") != "reward":
        raise ConvoforgeError(f"{folder} is not a reward model from `convoforge train reward`")
    _, base, base_adapter = base_folder(meta["base"])
    tokenizer = load_tokenizer(base)
    model = start_model(base, base_adapter, AutoModelForSequenceClassification, num_labels=1)
    model = merged(model, folder).to(torch_device()).eval()
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def common_args(s: LoraSettings, work: Path) -> dict:
    """Training arguments in float32 on the GPU when torch sees one, else on the CPU (TRL assumes bf16 on a GPU)."""
    from transformers import TrainingArguments

    # checkpointing off, under the name this transformers reads (it renamed gradient_ to activation_checkpointing)
    fields = TrainingArguments.__dataclass_fields__
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    return {
        "output_dir": str(work),
        "max_steps": s.steps,
        "learning_rate": s.lr,
        "per_device_train_batch_size": s.batch_size // s.accumulation,
        "gradient_accumulation_steps": s.accumulation,
        "use_cpu": torch_device() == "cpu",
        "bf16": False,
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": max(s.steps // 2, 1),
        "save_total_limit": 1,
        "report_to": "none",
        "seed": s.seed,
        "disable_tqdm": True,
        checkpointing: False,
    }


def dpo_args(s: LoraSettings) -> dict:
    """DPO's sigmoid loss; with sft_weight > 0 also the chosen answers' NLL (RPO), which keeps their likelihood up."""
    if s.sft_weight <= 0:
        return {"beta": s.beta}
    return {"beta": s.beta, "loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, s.sft_weight]}


def rl_args(s: LoraSettings) -> dict:
    """RLOO: k samples per prompt, leave-one-out baseline, KL to the base model (the adapter switched off).

    A step's prompts are generated together but go through the loss one prompt's k samples at a time
    (gradient accumulation): the logits of 16 long samples at once (50k vocabulary) outgrow 24 GB.
    """
    return {
        "per_device_train_batch_size": s.generations,
        "gradient_accumulation_steps": s.batch_size,
        "num_generations": s.generations,
        "max_completion_length": s.new_tokens,
        "beta": s.kl,
        "temperature": s.temperature,
        "log_completions": False,
    }


def progress_callback(total: int, echo: Callable[[str], None]) -> Any:
    """A TrainerCallback that reports each logged step (loss, reward) on one line."""
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
            logs = logs or {}
            shown = {k: v for k, v in logs.items() if k in {"loss", "reward", "kl", "learning_rate"}}
            if shown:
                echo(f"step {state.global_step}/{total} " + " ".join(f"{k}={v:.4g}" for k, v in shown.items()))

    return Progress()


def _reward_line(history: list[dict]) -> str:
    rewards = [h["reward"] for h in history if "reward" in h]
    return f"Mean reward: first step {rewards[0]:.4f}, last step {rewards[-1]:.4f}." if rewards else ""


def train(
    kind: str,
    data: Path,
    out: Path,
    s: LoraSettings,
    force: bool = False,
    resume: bool = False,
    reward_model: Path | None = None,
    echo: Callable[[str], None] | None = None,
    callbacks: list | None = None,
    realism: bool = False,
    quiet: bool = False,
) -> dict:
    """Run one of sft / reward / dpo / rl / profile and save the adapter (safetensors) with a model card.

    rl's reward is the LoRA reward model, or with `realism` a real-vs-own discriminator fitted on `data` (a
    `generate samples --real-chosen` export; `training.realism`). `quiet` prints nothing (a step inside a run).
    """
    import torch
    import trl
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from convoforge.llm.local import SHIPPED_ADAPTERS, adapter_path

    if kind not in KINDS:
        raise ConvoforgeError(f"unknown training kind {kind!r}; use one of {', '.join(KINDS)}")
    if realism and (kind != "rl" or reward_model is not None):
        raise ConvoforgeError("the realism reward is for rl, instead of --reward-model")
    if out.exists() and not force:
        raise ConvoforgeError(f"{out} exists; pass --force to replace it")
    dataset = load_split(data)
    if not NEEDED[kind] <= set(dataset.column_names):
        raise ConvoforgeError(f"{data} has columns {dataset.column_names}; {kind} needs {sorted(NEEDED[kind])}")
    if len(dataset) == 0:
        raise ConvoforgeError(f"{data} is empty")
    if kind == "rl" and reward_model is None and not realism:
        raise ConvoforgeError("rl needs --reward-model (a folder from `convoforge train reward`) or --realism")
    torch.manual_seed(s.seed)
    base_ref, base, base_adapter = base_folder(s.base)
    # the record names the adapter underneath by its absolute path (a shipped one by its name), so the chain
    # loads from any folder
    shipped = base_adapter in SHIPPED_ADAPTERS and not Path(base_adapter).exists()
    base_spec = f"local:{base_ref}+adapter={adapter_path(base_adapter).resolve()}" if base_adapter else s.base
    base_spec = s.base if shipped else base_spec
    tokenizer = load_tokenizer(base)
    work = out.parent / f".{out.name}.checkpoints"
    if work.exists() and not resume:
        shutil.rmtree(work)
    rewards: dict[str, Any] = {}
    described: dict = {}
    if realism:  # fitted before the model loads: a bad export fails fast
        from convoforge.training.realism import RealismReward

        judge = RealismReward(data)
        rewards, described = {"reward_funcs": judge}, judge.describe()
        if echo:
            echo(f"realism reward: {json.dumps(described)}")
    dataset = dataset.select_columns(sorted(NEEDED[kind] | ({"profiles"} if realism else set())))
    if kind == "sft":
        extra = {"assistant_only_loss": tokenizer.chat_template == TRAIN_TEMPLATE, "max_length": s.max_length}
    elif kind in {"reward", "dpo"}:
        extra = {"max_length": s.max_length, **(dpo_args(s) if kind == "dpo" else {})}
    else:
        extra = rl_args(s)
    config_cls, trainer_cls, model_cls, task = {
        "sft": (trl.SFTConfig, trl.SFTTrainer, AutoModelForCausalLM, "CAUSAL_LM"),
        "reward": (trl.RewardConfig, trl.RewardTrainer, AutoModelForSequenceClassification, "SEQ_CLS"),
        "dpo": (trl.DPOConfig, trl.DPOTrainer, AutoModelForCausalLM, "CAUSAL_LM"),
        "rl": (trl.RLOOConfig, trl.RLOOTrainer, AutoModelForCausalLM, "CAUSAL_LM"),
        "profile": (trl.RLOOConfig, trl.RLOOTrainer, AutoModelForCausalLM, "CAUSAL_LM"),
    }[kind]
    # on an adapter (e.g. DPO after SFT) that adapter, merged in, is both the policy's start and the reference
    model = start_model(base, base_adapter, model_cls, **({"num_labels": 1} if kind == "reward" else {}))
    if kind == "reward":
        model.config.pad_token_id = tokenizer.pad_token_id
    if kind == "rl" and not realism:
        rm, rm_tokenizer = load_reward_model(reward_model)
        rewards = {"reward_funcs": rm, "reward_processing_classes": rm_tokenizer}
    elif kind == "profile":
        from convoforge.training.profile import ProfileReward

        rewards = {"reward_funcs": ProfileReward(dataset[0]["catalog"])}
    args = {**common_args(s, work), **extra}
    with quiet_peft():  # the trainer wraps the model in PEFT
        trainer = trainer_cls(
            model=model,
            args=config_cls(**args),
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=lora_config(s, task),
            callbacks=([progress_callback(s.steps, echo)] if echo else []) + list(callbacks or []),
            **rewards,
        )
    if quiet:
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    if trainer.train_dataset is not None and len(trainer.train_dataset) == 0:
        raise ConvoforgeError(f"no row of {data} fits in --max-length {s.max_length} tokens; raise it")
    checkpoint = resume and any(work.glob("checkpoint-*"))
    with quiet_peft():  # TRL's trainers that sample (DPO, RLOO) read it through PEFT while they train
        trainer.train(resume_from_checkpoint=True if checkpoint else None)
    history = trainer.state.log_history
    losses = [h["loss"] for h in history if "loss" in h]
    tmp = out.parent / f".{out.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    trainer.model.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    summary = {
        "kind": kind,
        "base": base_spec,
        "data": str(data),
        "rows": len(dataset),
        "steps": trainer.state.global_step,
        "first_loss": round(losses[0], 4) if losses else None,
        "last_loss": round(losses[-1], 4) if losses else None,
        "losses": [round(x, 4) for x in losses],
        "rewards": [round(h["reward"], 4) for h in history if "reward" in h],
        "kls": [round(h["kl"], 5) for h in history if "kl" in h],
        "reward_model": str(reward_model) if reward_model else None,
        **({"realism_reward": described} if realism else {}),
        **{k: v for k, v in asdict(s).items() if k != "base"},
    }
    (tmp / "convoforge_training.json").write_text(json.dumps(summary, indent=2))
    reward_line = _reward_line(history)
    if realism:
        judged = described["discriminator"]
        reward_line += (
            f" Reward: realism, a discriminator fitted on {described['real']} real vs {described['own']} own"
            f" conversations (cross-validated accuracy {judged['accuracy']})."
        )
    card = CARD.format(**summary, base_ref=base_ref, trainer=type(trainer).__name__, reward_line=reward_line)
    (tmp / "README.md").write_text(card)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    shutil.rmtree(work, ignore_errors=True)
    return summary
