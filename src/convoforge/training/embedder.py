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
) -> dict:
    """Train on (anchor, positive) pairs; other positives in the batch are the negatives.

    With symmetric=True the loss also ranks anchors for each positive (both directions). With query_only=True
    the anchors go through a tuned copy (the query tower) and the positives through the base model, frozen: item
    vectors, and so the item index and item-to-item search, stay as they were.
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
    model.save(str(tmp))
    summary = {
        "base": base,
        "loss": "symmetric in-batch negatives" if symmetric else "in-batch negatives",
        "towers": "query tuned, items frozen" if query_only else "shared",
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
