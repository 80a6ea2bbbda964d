"""convoforge's own persona generator: LoRA SFT on real conversations, in the generator's own few-shot prompt.

`convoforge train generator` builds its rows from the train part of a Synthetic-Persona-Chat CSV (the hash
split the critics use; the held-out 40% is never trained on), trains with TRL's SFTTrainer, and saves a
compact adapter (float16 safetensors, no tokenizer copy) with a card. The shipped one lives in
`convoforge/agents/persona/models/generator` and is `generate personas`'s default generator on the embedded model.
"""

from __future__ import annotations

import json
import random
import shutil
from collections import Counter
from pathlib import Path

from convoforge.agents.persona.context import PersonaContext
from convoforge.agents.persona.stages import GenerationJob, generator_messages
from convoforge.datasets.spc import first_turns
from convoforge.errors import ConvoforgeError

CARD = """---
library_name: peft
base_model: HuggingFaceTB/SmolLM2-135M-Instruct
tags: [convoforge, lora, sft, persona-generator]
---

# convoforge persona generator (LoRA on SmolLM2-135M-Instruct)

The default generator of `convoforge generate personas` on the embedded model
(`local:smollm2-135m+adapter=persona-generator`). Plain `local:smollm2-135m` stays available
(`--generator-model local:smollm2-135m`).

- Data: {train_rows} rows from the train part of `{data}` ({train_conversations} conversations; the
  held-out 40% by a hash of the profiles, which `eval personas` and the critics report on, never trained on),
  each in the generator's own prompt: {few_shot} few-shot example(s) from other train conversations, the
  persona pair, the turn bounds, and the real conversation cut to those bounds (3-7 turns per user).
- Training: TRL SFTTrainer, assistant-only loss, LoRA r={lora_r} alpha={lora_alpha} on q/k/v/o, {steps} steps x
  {batch_size} rows, lr {lr}, max length {max_length}; training loss {first_loss} -> {last_loss}; saved in float16
  ({size_kb} KB).
- Held-out assistant-token loss ({test_rows} rows of the held-out part, same prompt format): base {loss_before}
  -> tuned {loss_after} (perplexity {ppl_before} -> {ppl_after}).
- Rebuild: `{command}`

Output quality of `generate personas` with this generator against plain SmolLM2 is measured in the README
(Results), with `convoforge eval personas --reference SPC.csv`.
"""

SHIPPED = "persona-generator"


def shipped_dir() -> Path:
    """Where the shipped generator adapter lives inside the package."""
    from convoforge.llm.local import adapter_path

    return adapter_path(SHIPPED)


def generator_rows(rows: list[dict], split: str, few_shot: int, seed: int) -> list[dict]:
    """SFT rows in the generator's prompt: other conversations as examples, the bounds, the cut conversation."""
    rng = random.Random(seed)
    usable = [r for r in rows if r["turns"] and len({s for s, _ in r["turns"]}) == 2]
    out = []
    for n, row in enumerate(usable):
        most = min(Counter(s for s, _ in row["turns"]).values())
        per_user = min(most, rng.randint(3, 7))
        others = [u for u in rng.sample(usable, min(len(usable), few_shot + 1)) if u is not row][:few_shot]
        examples = [{"profiles": u["profiles"], "turns": first_turns(u["turns"], rng.randint(3, 6))} for u in others]
        ctx = PersonaContext(min_turns=per_user, max_turns=per_user + 1)
        job = GenerationJob(f"spc-{n}", 0, row["profiles"], examples)
        answer = "\n".join(f"{s}: {t}" for s, t in first_turns(row["turns"], per_user))
        messages = [*generator_messages(job, ctx), {"role": "assistant", "content": answer}]
        out.append({"id": f"spc-{n}", "pair_id": f"spc-{n}", "kind": "generator", "messages": messages, "split": split})
    return out


def build_export(data: Path, out: Path, few_shot: int = 1, seed: int = 0) -> dict:
    """Write the generator's SFT rows (train and test splits) as an export folder `train sft` reads."""
    from datasets import Dataset, DatasetDict

    from convoforge.critics.faithfulness_data import split_of
    from convoforge.datasets.records import write_dataset
    from convoforge.datasets.spc import read_spc

    if not data.is_file():
        raise ConvoforgeError(f"no Synthetic-Persona-Chat CSV at {data}")
    rows = read_spc(data)
    splits = {name: [r for r in rows if split_of(r) == name] for name in ("train", "test")}
    built = {name: generator_rows(part, name, few_shot, seed) for name, part in splits.items()}
    if not built["train"]:
        raise ConvoforgeError(f"{data} has no usable train conversations")
    dataset = DatasetDict(
        {k: Dataset.from_list([{**r, "split": k} for r in v]).remove_columns("split") for k, v in built.items()}
    )
    write_dataset(dataset, "# convoforge generator SFT rows\n", out, force=True)
    return {
        "train_conversations": len(splits["train"]),
        "train_rows": len(built["train"]),
        "test_rows": len(built["test"]),
    }


def compact(adapter: Path, out: Path) -> int:
    """Copy an adapter as float16 safetensors plus its config and record (no tokenizer files); bytes written."""
    from safetensors.torch import load_file, save_file

    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.half().contiguous() for k, v in load_file(adapter / "adapter_model.safetensors").items()}
    save_file(tensors, out / "adapter_model.safetensors")
    shutil.copy(adapter / "adapter_config.json", out / "adapter_config.json")
    record = json.loads((adapter / "convoforge_training.json").read_text())
    record.pop("losses", None)
    (out / "convoforge_training.json").write_text(json.dumps(record, indent=2))
    return (out / "adapter_model.safetensors").stat().st_size


def train_generator(
    data: Path,
    out: Path,
    settings: object,
    few_shot: int = 1,
    test_limit: int = 60,
    force: bool = False,
    echo: object = None,
) -> dict:
    """Build the rows, train the LoRA, measure held-out loss, and save the compact adapter with its card."""
    from convoforge.training.evaluate import lm_loss
    from convoforge.training.lora import train
    from convoforge.training.sampling import split_rows

    if out.exists() and not force:
        raise ConvoforgeError(f"{out} exists; pass --force to replace it")
    work = out.parent / f".{out.name}.work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        counts = build_export(data, work / "rows", few_shot, settings.seed)
        summary = train("sft", work / "rows", work / "adapter", settings, force=True, echo=echo)
        test = split_rows(work / "rows", "test", test_limit, settings.seed)
        before = lm_loss(settings.base, None, test, settings.max_length)
        after = lm_loss(settings.base, work / "adapter", test, settings.max_length)
        staged = out.parent / f".{out.name}.new"
        shutil.rmtree(staged, ignore_errors=True)
        size = compact(work / "adapter", staged)
        command = (
            f"convoforge train generator --data {data} --out {out} --steps {settings.steps} "
            f"--batch-size {settings.batch_size} --lr {settings.lr} --lora-r {settings.lora_r} --force"
        )
        figures = {
            **counts,
            "test_rows": len(test),
            "loss_before": before["loss"],
            "loss_after": after["loss"],
            "ppl_before": before["perplexity"],
            "ppl_after": after["perplexity"],
            "size_kb": size // 1024,
            "few_shot": few_shot,
            "command": command,
        }
        card_fields = {k: v for k, v in summary.items() if k != "data"} | figures | {"data": Path(data).name}
        (staged / "README.md").write_text(CARD.format(**card_fields))
        record = json.loads((staged / "convoforge_training.json").read_text()) | figures | {"data": Path(data).name}
        (staged / "convoforge_training.json").write_text(json.dumps(record, indent=2))
        if out.exists():
            shutil.rmtree(out)
        staged.rename(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"out": str(out), **figures, "first_loss": summary["first_loss"], "last_loss": summary["last_loss"]}
