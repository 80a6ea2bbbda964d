"""LoRA vs full fine-tuning on the same data and steps: trainable params, step time, tokens/s, peak memory.

Run: python benchmarks/training_cost.py [--data EXPORT] [--steps 6] [--max-length 256]
Each mode runs in its own process so peak memory is its own. Prints one JSON line.
Memory is reported twice: the whole process's peak RSS (loading included) and the peak
RSS during training alone (the kernel's high-water mark reset once the model is loaded).
On a GPU (torch sees one; CONVOFORGE_DEVICE=cpu keeps the CPU) it also reports torch's peak GPU
allocation during training, the memory a GPU run is limited by.
With no --data, an sft export of the shipped seed conversations is made first.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_mode(mode: str, data: Path, steps: int, max_length: int, batch_size: int) -> dict:
    """One SFT run (lora or full) in this process; figures of the timed steps (the first is warm-up)."""
    import torch
    import trl
    from transformers import AutoModelForCausalLM, TrainerCallback

    from convoforge.training.lora import LoraSettings, base_folder, common_args, load_split, load_tokenizer, lora_config

    s = LoraSettings(steps=steps, batch_size=batch_size, max_length=max_length, lr=1e-4)
    _, base, _ = base_folder(s.base)
    tokenizer = load_tokenizer(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    times: list[float] = []
    tokens: list[int] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            times.append(time.perf_counter() - self.t0)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "num_tokens" in logs:
                tokens.append(int(float(logs["num_tokens"])))

    with tempfile.TemporaryDirectory() as work:
        args = {**common_args(s, Path(work)), "save_strategy": "no", "max_length": max_length}
        trainer = trl.SFTTrainer(
            model=model,
            args=trl.SFTConfig(**args, assistant_only_loss=True),
            train_dataset=load_split(data).select_columns(["messages"]),
            processing_class=tokenizer,
            peft_config=lora_config(s, "CAUSAL_LM") if mode == "lora" else None,
            callbacks=[Timer()],
        )
        trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in trainer.model.parameters())
        loaded_gb = _rss_gb("VmRSS")
        gpu = not args["use_cpu"]  # common_args trains on the GPU whenever torch sees one
        if gpu:
            torch.cuda.reset_peak_memory_stats()
        Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark (Linux)
        trainer.train()
        train_peak_gb = _rss_gb("VmHWM")
        gpu_peak_gb = round(torch.cuda.max_memory_allocated() / 1e9, 3) if gpu else None
    timed = times[1:] or times
    step_tokens = (tokens[-1] - tokens[0]) / max(len(tokens) - 1, 1) if len(tokens) > 1 else 0
    return {
        "trainable_params": trainable,
        "total_params": total,
        "step_s": round(sum(timed) / len(timed), 3),
        "tokens_per_s": round(step_tokens / (sum(timed) / len(timed)), 1) if step_tokens else None,
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 3),
        "loaded_rss_gb": loaded_gb,
        "train_peak_rss_gb": train_peak_gb,
        "device": torch.cuda.get_device_name() if gpu else "cpu",
        "train_peak_gpu_gb": gpu_peak_gb,
    }


def _rss_gb(field: str) -> float:
    """A memory field of /proc/self/status in GB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1e6, 3)
    raise RuntimeError(f"no {field} in /proc/self/status")


def main() -> None:
    """Run both modes in child processes and print their figures and ratios."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", type=Path)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--mode", choices=["lora", "full"], help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.mode:
        print(json.dumps(run_mode(a.mode, a.data, a.steps, a.max_length, a.batch_size)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = a.data
        if data is None:
            data = Path(tmp) / "sft"
            _shipped_export(data)
        figures = {}
        for mode in ("lora", "full"):
            cmd = [sys.executable, __file__, "--mode", mode, "--data", str(data), "--steps", str(a.steps)]
            cmd += ["--max-length", str(a.max_length), "--batch-size", str(a.batch_size)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            figures[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    lora, full = figures["lora"], figures["full"]
    print(
        json.dumps(
            {
                "steps": a.steps,
                "batch_size": a.batch_size,
                "max_length": a.max_length,
                "data": str(a.data) if a.data else "shipped seed conversations",
                **figures,
                "ratio_trainable_params": round(lora["trainable_params"] / full["trainable_params"], 5),
                "ratio_step_time": round(lora["step_s"] / full["step_s"], 3),
                "ratio_peak_memory": round(lora["peak_rss_gb"] / full["peak_rss_gb"], 3),
                "ratio_train_peak_memory": round(lora["train_peak_rss_gb"] / full["train_peak_rss_gb"], 3),
                "ratio_gpu_peak_memory": round(lora["train_peak_gpu_gb"] / full["train_peak_gpu_gb"], 3)
                if lora["train_peak_gpu_gb"] and full["train_peak_gpu_gb"]
                else None,
                "ratio_tokens_per_s": round(lora["tokens_per_s"] / full["tokens_per_s"], 3)
                if lora["tokens_per_s"] and full["tokens_per_s"]
                else None,
            }
        )
    )


def _shipped_export(out: Path) -> None:
    """An sft export of the seed conversations that ship with convoforge (no reference data needed)."""
    from datasets import Dataset, DatasetDict

    from convoforge.agents.persona.seeds import shipped_examples
    from convoforge.datasets.export import example_record, sft_rows

    records = [example_record(f"seed-{i}", ex) for i, ex in enumerate(shipped_examples())]
    DatasetDict({"train": Dataset.from_list(sft_rows(records) * 8)}).save_to_disk(str(out))


if __name__ == "__main__":
    main()
