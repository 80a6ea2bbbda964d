"""Fine-tune a sentence-transformers embedder with in-batch negatives (MultipleNegativesRankingLoss)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from convoforge.errors import ConvoforgeError
from convoforge.llm.device import torch_device
from convoforge.llm.embeddings import EMBEDDED_EMBEDDER, embedded_embedder_dir
from convoforge.llm.local import quiet_peft

LORA_TARGETS = ["query", "key", "value", "attention.output.dense"]


def tune_embedder(
    pairs: list[tuple[str, str]],
    out: Path,
    base: str = EMBEDDED_EMBEDDER,
    epochs: float = 1.0,
    batch_size: int = 32,
    lr: float = 5e-5,
    max_steps: int = -1,
    max_seq_length: int = 128,
    symmetric: bool = False,
    query_only: bool = False,
    seed: int = 0,
    force: bool = False,
    lora_rank: int = 0,
) -> dict:
    """Train on (anchor, positive) pairs; other positives in the batch are the negatives.

    With symmetric=True the loss also ranks anchors for each positive (both directions). With query_only=True
    the anchors go through a tuned copy (the query tower) and the positives through the base model, frozen: item
    vectors, and so the item index and item-to-item search, stay as they were. With lora_rank > 0 only a PEFT LoRA
    adapter on the attention is trained and saved (a few hundred KB; load it as `BASE+adapter=OUT`).
    """
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer import losses
    from sentence_transformers.sentence_transformer.modules import Router
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        SentenceTransformerTrainingArguments,
    )

    out = Path(out)
    if len(pairs) < batch_size:
        raise ConvoforgeError(f"only {len(pairs)} training pairs; need at least one batch of {batch_size}")
    if out.exists() and not force:
        raise ConvoforgeError(f"{out} exists; pass --force to replace it")
    folder = embedded_embedder_dir() if base == EMBEDDED_EMBEDDER else Path(base)
    device = torch_device()
    model = SentenceTransformer(str(folder), device=device, local_files_only=True)
    model.max_seq_length = max_seq_length
    routes = {}
    if lora_rank and query_only:
        raise ConvoforgeError("a LoRA adapter and a separate query tower cannot be combined")
    if lora_rank:
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=lora_rank, lora_alpha=2 * lora_rank, lora_dropout=0.05, target_modules=LORA_TARGETS)
        with quiet_peft():
            model[0].model = get_peft_model(model[0].model, config)
    if query_only:
        items = SentenceTransformer(str(folder), device=device, local_files_only=True)
        items.requires_grad_(False)
        tower = Router.for_query_document(query_modules=list(model.children()), document_modules=list(items.children()))
        model, routes = SentenceTransformer(modules=[tower], device=device), {"anchor": "query", "positive": "document"}
    data = Dataset.from_dict({"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]})
    work = Path(tempfile.mkdtemp(prefix="convoforge-embedder-"))
    args = SentenceTransformerTrainingArguments(
        output_dir=str(work / "checkpoints"),
        num_train_epochs=epochs,
        max_steps=max_steps,
        per_device_train_batch_size=batch_size,
        learning_rate=lr,
        warmup_steps=0.1,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        use_cpu=device == "cpu",
        bf16=False,
        seed=seed,
        save_strategy="no",
        report_to="none",
        logging_steps=10,
        disable_tqdm=True,
        router_mapping=routes,
    )
    loss = (losses.MultipleNegativesSymmetricRankingLoss if symmetric else losses.MultipleNegativesRankingLoss)(model)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=data, loss=loss)
    result = trainer.train()
    tmp = out.parent / f".{out.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    if lora_rank:
        model[0].model.save_pretrained(str(tmp))  # the adapter alone
    else:
        model.save(str(tmp))
    summary = {
        "base": base,
        "loss": "symmetric in-batch negatives" if symmetric else "in-batch negatives",
        "towers": "query tuned, items frozen" if query_only else "shared",
        "lora_rank": lora_rank or None,
        "pairs": len(pairs),
        "steps": result.global_step,
        "train_loss": round(result.training_loss, 4),
        "loss_curve": [round(h["loss"], 4) for h in trainer.state.log_history if "loss" in h],
    }
    (tmp / "convoforge_training.json").write_text(json.dumps(summary, indent=2))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    shutil.rmtree(work, ignore_errors=True)
    return summary


EXTRACT_TARGETS = ["query", "key", "value", "dense"]
EXTRACT_FULL = ["LayerNorm", "position_embeddings", "token_type_embeddings"]


def _halve(path: Path) -> None:
    """Store a safetensors file's float32 tensors as float16 (loading casts them back)."""
    import torch
    from safetensors.torch import load_file, save_file

    tensors = {k: v.half() if v.dtype == torch.float32 else v for k, v in load_file(str(path)).items()}
    save_file(tensors, str(path), metadata={"format": "pt"})


def extract_adapter(tuned: Path, out: Path, rank: int = 96, base: str = EMBEDDED_EMBEDDER) -> dict:
    """Compress a fully tuned embedder into a PEFT LoRA adapter on its base: each linear's change, truncated SVD.

    Biases, LayerNorms and the position embeddings are stored whole (small); the word embeddings keep the
    base's values. Load the result as `BASE+adapter=OUT`.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from sentence_transformers import SentenceTransformer

    folder = embedded_embedder_dir() if base == EMBEDDED_EMBEDDER else Path(base)
    start = SentenceTransformer(str(folder), device="cpu", local_files_only=True)[0].model
    end = SentenceTransformer(str(tuned), device="cpu", local_files_only=True)[0].model
    after = dict(end.named_modules())
    config = LoraConfig(
        r=rank, lora_alpha=rank, target_modules=EXTRACT_TARGETS, bias="lora_only", modules_to_save=EXTRACT_FULL
    )
    with quiet_peft():
        model = get_peft_model(start, config)
    kept, total = 0.0, 0.0
    with torch.no_grad():
        for name, module in model.named_modules():
            if not hasattr(module, "lora_A") or "default" not in module.lora_A:
                continue
            key = name.removeprefix("base_model.model.")
            target = after[key]
            delta = target.weight - module.base_layer.weight
            u, s, vt = torch.linalg.svd(delta, full_matrices=False)
            module.lora_B["default"].weight.copy_(u[:, :rank] * s[:rank])
            module.lora_A["default"].weight.copy_(vt[:rank])
            module.base_layer.bias.copy_(target.bias)
            kept, total = kept + float((s[:rank] ** 2).sum()), total + float((s**2).sum())
        for name, module in model.named_modules():
            if hasattr(module, "modules_to_save") and "default" in getattr(module, "modules_to_save", {}):
                key = name.removeprefix("base_model.model.")
                module.modules_to_save["default"].load_state_dict(after[key].state_dict())
    tmp = out.parent / f".{out.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    _halve(tmp / "adapter_model.safetensors")
    summary = {
        "rank": rank,
        "dtype": "float16",
        "energy_kept": round(kept / max(total, 1e-12), 4),
        "from": "full fine-tune, SVD of changes",
    }
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, out)
    return summary
