"""convoforge's own persona generator: LoRA SFT on real conversations, in the generator's own few-shot prompt.

`convoforge train generator` builds its rows from the train part of a Synthetic-Persona-Chat CSV (the hash
split the critics use; the held-out 40% is never trained on), trains with TRL's SFTTrainer, and saves a
compact adapter (float16 safetensors, no tokenizer copy) with a card. The shipped one lives in
`convoforge/agents/persona/models/generator` and is `generate personas`'s default generator on the embedded model.
"""

from __future__ import annotations

import json
import random
import shlex
import shutil
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from convoforge.agents.persona.context import PersonaContext
from convoforge.agents.persona.hygiene import leaks
from convoforge.agents.persona.stages import GenerationJob, generator_messages
from convoforge.datasets.spc import first_turns
from convoforge.errors import ConvoforgeError

CARD = """---
library_name: peft
base_model: HuggingFaceTB/SmolLM2-135M-Instruct
tags: [convoforge, lora, sft, persona-generator]
---

# convoforge persona generator (LoRA on SmolLM2-135M-Instruct)

The default generator of `convoforge generate personas` on the embedded model, with the lexical prior
beside it (`local:smollm2-135m+adapter=persona-generator+bias=persona-generator`; `logit_bias.md` says how it
was fitted; refit it after rebuilding this adapter). Plain `local:smollm2-135m` stays available
(`--generator-model local:smollm2-135m`).

- Data: {train_rows} rows from the train part of `{data}` ({train_conversations} conversations; the
  held-out 40% by a hash of the profiles, which `eval personas` and the critics report on, never trained on),
  each in the generator's own prompt: {few_shot} few-shot example(s) from other train conversations, the
  persona pair, the turn bounds, and the real conversation cut to those bounds (3-7 turns per user).
- Training: TRL SFTTrainer, assistant-only loss, LoRA r={lora_r} alpha={lora_alpha} on q/k/v/o, {steps} steps x
  {batch_size} rows, lr {lr}, max length {max_length}; training loss {first_loss} -> {last_loss}; saved in float16
  ({size_kb} KB).
{rounds_text}
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


def few_shot_examples(usable: list[dict], row: dict, few_shot: int, rng: random.Random) -> list[dict]:
    """Other conversations than `row`, each cut to 3-6 turns per user: the prompt's few-shot examples."""
    others = [u for u in rng.sample(usable, min(len(usable), few_shot + 1)) if u is not row][:few_shot]
    return [{"profiles": u["profiles"], "turns": first_turns(u["turns"], rng.randint(3, 6))} for u in others]


def real_answer(turns: list, rng: random.Random, low: int = 3, high: int = 7) -> tuple[int, str]:
    """A real conversation cut to a random `low`-`high` turns per user (fewer if it is shorter), as a transcript."""
    per_user = min(min(Counter(s for s, _ in turns).values()), rng.randint(low, high))
    return per_user, "\n".join(f"{s}: {t}" for s, t in first_turns(turns, per_user))


def generator_rows(rows: list[dict], split: str, few_shot: int, seed: int) -> list[dict]:
    """SFT rows in the generator's prompt: other conversations as examples, the bounds, the cut conversation."""
    rng = random.Random(seed)
    usable = [r for r in rows if r["turns"] and len({s for s, _ in r["turns"]}) == 2]
    out = []
    for n, row in enumerate(usable):
        per_user, answer = real_answer(row["turns"], rng)
        examples = few_shot_examples(usable, row, few_shot, rng)
        ctx = PersonaContext(min_turns=per_user, max_turns=per_user + 1)
        job = GenerationJob(f"spc-{n}", 0, row["profiles"], examples)
        messages = [*generator_messages(job, ctx), {"role": "assistant", "content": answer}]
        out.append({"id": f"spc-{n}", "pair_id": f"spc-{n}", "kind": "generator", "messages": messages, "split": split})
    return out


def spc_parts(data: Path, drop_leaky: bool = False) -> dict[str, list[dict]]:
    """An SPC CSV's conversations in its train and held-out test parts (the critics' hash split).

    With `drop_leaky`, the train part leaves out the conversations with a prompt-text turn (`hygiene.leaks`; a
    third of SPC carries its source generator's placeholders, which a generator trained on them learns to write);
    the test part is whole.
    """
    from convoforge.critics.faithfulness_data import split_of
    from convoforge.datasets.spc import read_spc

    if not data.is_file():
        raise ConvoforgeError(f"no Synthetic-Persona-Chat CSV at {data}")
    rows = read_spc(data)
    parts = {name: [r for r in rows if split_of(r) == name] for name in ("train", "test")}
    if drop_leaky:
        parts["train"] = [r for r in parts["train"] if not leaks(r["turns"])]
    return parts


def prompt_rows(
    data: Path, ctx: PersonaContext, few_shot: int = 1, seed: int = 0, drop_leaky: bool = False
) -> list[dict]:
    """The generator's own prompt for each train persona pair of an SPC CSV (what `generate samples` samples).

    One few-shot example from another train conversation and the run's turn bounds, as `generate personas`
    writes them: the samples are on-policy for the shipped generator, so their winners and losers can train it.
    Each row keeps the real conversation's turns (what `real_pairs` prefers to the samples).
    """
    rng = random.Random(seed)
    usable = [r for r in spc_parts(data, drop_leaky)["train"] if len({s for s, _ in r["turns"]}) == 2]
    if not usable:
        raise ConvoforgeError(f"{data} has no usable train conversations")
    out = []
    for n, row in enumerate(usable):
        job = GenerationJob(f"spc-{n}", 0, row["profiles"], few_shot_examples(usable, row, few_shot, rng))
        prompt = generator_messages(job, ctx)
        out.append({"pair_id": job.pair_id, "profiles": row["profiles"], "prompt": prompt, "turns": row["turns"]})
    return out


def build_export(data: Path, out: Path, few_shot: int = 1, seed: int = 0, drop_leaky: bool = False) -> dict:
    """Write the generator's SFT rows (train and test splits) as an export folder `train sft` reads."""
    from datasets import Dataset, DatasetDict

    from convoforge.datasets.records import write_dataset

    splits = spc_parts(data, drop_leaky)
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


@dataclass(frozen=True)
class Rounds:
    """On-policy DPO rounds after the SFT: persona pairs and samples per round, DPO steps, lr and batch size.

    `kind`, `pairs` and `samples` may be comma lists, taken in turn round by round (`at`); `drop_leaky_rounds`
    lists the 1-based rounds that leave SPC's placeholder conversations out (`drop_leaky`: every round).
    `critics` (references, `--critic`) and `critic_options` (`--critic-option`) judge the critics rounds; none
    given: the built-in experts.
    """

    count: int = 1
    pairs: int | str = 40
    samples: int | str = 6
    steps: int = 40
    lr: float = 1e-4
    batch_size: int = 2
    kind: str = "critics"  # critics: their winner over a loser; real: the real conversation over a sample (SPIN)
    rank: int = 32  # the merged adapter's rank is cut to this (truncated SVD) so the shipped file stays small
    drop_leaky: bool = False  # no SPC conversation with placeholders as a pair, an example or a chosen answer
    drop_leaky_rounds: str = ""
    critics: tuple[str, ...] = ()
    critic_options: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse a kind, count list or round list the rounds cannot run, with the option that states it."""
        if not set(self.kind.split(",")) <= {"critics", "real"}:
            raise ConvoforgeError(f"--round-kind must be critics, real or a comma list of them, not {self.kind!r}")
        for name, value, least in (("--round-pairs", self.pairs, 1), ("--round-samples", self.samples, 2)):
            if not all(p.strip().isdigit() and int(p) >= least for p in str(value).split(",")):
                raise ConvoforgeError(f"{name} must be a whole number >= {least} or a comma list of them, not {value}")
        listed = self.drop_leaky_rounds
        if listed and not all(p.strip().isdigit() and 1 <= int(p) <= self.count for p in listed.split(",")):
            raise ConvoforgeError(f"--drop-leaky-rounds must list rounds between 1 and {self.count}, not {listed!r}")
        kinds = [k.strip() for k in self.kind.split(",")]
        judged = "critics" in [kinds[k % len(kinds)] for k in range(self.count)]
        if (self.critics or self.critic_options) and not judged:
            raise ConvoforgeError("--critic and --critic-option judge the critics rounds; this plan runs none")

    def judges(self) -> list[str]:
        """The critics that judge a critics round: those given, else the built-in experts."""
        from convoforge.critics.plugins import DEFAULT_CRITICS

        return list(self.critics) or list(DEFAULT_CRITICS)

    def at(self, k: int) -> Rounds:
        """Round k's own settings (0-based): each comma list taken in turn."""

        def pick(value: object) -> str:
            parts = str(value).split(",")
            return parts[k % len(parts)].strip()

        clean = self.drop_leaky or str(k + 1) in {r.strip() for r in self.drop_leaky_rounds.split(",")}
        return replace(
            self, kind=pick(self.kind), pairs=int(pick(self.pairs)), samples=int(pick(self.samples)), drop_leaky=clean
        )


CHOSEN = {
    "critics": "the critics' winner over each loser of the same pair",
    "real": "the real SPC conversation over each sample (SPIN)",
}


def critics_text(rounds: Rounds) -> str:
    """Which critics judged the critics rounds, with their settings, for the card."""
    if not rounds.critics and not rounds.critic_options:
        return "the built-in experts"
    named = ", ".join(f"`{c}`" for c in rounds.judges())
    return named + (f" (settings {json.dumps(rounds.critic_options)})" if rounds.critic_options else "")


def option_flags(rounds: Rounds) -> str:
    """The rounds' critics as the `--critic` and `--critic-option` flags that rebuild them."""
    flags = [f" --critic {shlex.quote(c)}" for c in rounds.critics]
    for name, values in rounds.critic_options.items():
        for key, value in values.items():
            text = value if isinstance(value, str) and not _reads_as_json(value) else json.dumps(value)
            flags.append(f" --critic-option {shlex.quote(f'{name}.{key}={text}')}")
    return "".join(flags)


def _reads_as_json(text: str) -> bool:
    """Whether `--critic-option` would read this text as JSON (then it is written quoted)."""
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def rounds_text(done: list[dict], rounds: Rounds) -> str:
    """The card's account of the preference rounds (none: plain SFT)."""
    if not done:
        return "- No on-policy preference round (plain SFT)."
    lines = [
        f"- On-policy DPO rounds: {len(done)} ({rounds.kind}). In each, the adapter so far wrote conversations for "
        "train persona pairs in the generator's prompt (temperature and top-k of `generate personas`); preference "
        f"pairs ({'; '.join(f'{k}: {v}' for k, v in CHOSEN.items())}; the critics: {critics_text(rounds)}) trained "
        "DPO + NLL on chosen on top "
        f"({rounds.steps} steps x {rounds.batch_size}, lr {rounds.lr}); the DPO adapter was merged with the one "
        f"below into a single LoRA (factors concatenated, cut to rank {rounds.rank} by truncated SVD where larger)."
    ]
    for k, r in enumerate(done, 1):
        sampled = f"{r['pairs']} pairs x {r['samples']} samples"
        clean = ", placeholder conversations left out" if r["drop_leaky"] else ""
        judged = (
            f"parse rate {r['parse_rate']}, critic acceptance {r['acceptance']} of {r['conversations']} samples; "
            if "acceptance" in r
            else ""
        )
        lines.append(
            f"  - round {k} ({r['kind']}, {sampled}{clean}): {judged}{r['preference_pairs']} train "
            f"pairs; DPO loss {r['dpo_first_loss']} -> {r['dpo_last_loss']}; rank {r['rank']}, update energy "
            f"dropped {r['energy_dropped']}"
        )
    return "\n".join(lines)


def truncated(b: object, a: object, rank: int) -> tuple[object, object, float]:
    """The best rank-`rank` factors of B A (truncated SVD through two QRs) and the share of its energy dropped."""
    import torch

    qb, rb = torch.linalg.qr(b)
    qa, ra = torch.linalg.qr(a.T)
    u, s, vh = torch.linalg.svd(rb @ ra.T)
    root = s[:rank].sqrt()
    dropped = float((s[rank:] ** 2).sum() / (s**2).sum().clamp_min(1e-12))
    return qb @ (u[:, :rank] * root), (root[:, None] * vh[:rank]) @ qa.T, dropped


def merge_adapters(first: Path, second: Path, out: Path, rank: int | None = None) -> dict:
    """One LoRA equal to `second` trained on top of `first` merged: factors concatenated, scales folded in.

    W + s1 B1 A1 + s2 B2 A2 = W + [s1 B1, s2 B2] [A1; A2], exactly, so the rank is r1 + r2 with alpha = rank
    (scale 1). With `rank` below that, each layer's update is cut to its best rank-`rank` approximation
    (truncated SVD; the largest share of update energy dropped comes back), which keeps the shipped file small.
    Both must adapt the same modules; returns the bytes written (float16 safetensors) and the energy dropped.
    """
    import torch
    from safetensors.torch import load_file, save_file

    configs = [json.loads((a / "adapter_config.json").read_text()) for a in (first, second)]
    if {frozenset(c["target_modules"]) for c in configs} != {frozenset(configs[0]["target_modules"])}:
        raise ConvoforgeError(f"{first} and {second} adapt different modules; they cannot be merged")
    tensors = [load_file(a / "adapter_model.safetensors") for a in (first, second)]
    if set(tensors[0]) != set(tensors[1]):
        raise ConvoforgeError(f"{first} and {second} have different LoRA layers; they cannot be merged")
    scales = [c["lora_alpha"] / c["r"] for c in configs]
    merged = {}
    for key in tensors[0]:
        parts = [t[key].float() for t in tensors]
        if ".lora_A." in key:
            merged[key] = torch.cat(parts, dim=0)
        elif ".lora_B." in key:
            merged[key] = torch.cat([p * scale for p, scale in zip(parts, scales, strict=True)], dim=1)
        else:
            raise ConvoforgeError(f"{first}: {key} is not a LoRA factor; only plain LoRA adapters merge")
    full = configs[0]["r"] + configs[1]["r"]
    rank = min(rank or full, full)
    dropped = 0.0
    if rank < full:
        for key in [k for k in merged if ".lora_A." in k]:
            other = key.replace(".lora_A.", ".lora_B.")
            merged[other], merged[key], lost = truncated(merged[other], merged[key], rank)
            dropped = max(dropped, lost)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.half().contiguous() for k, v in merged.items()}, out / "adapter_model.safetensors")
    config = configs[0] | {"r": rank, "lora_alpha": rank, "rank_pattern": {}, "alpha_pattern": {}}
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2))
    return {"bytes": (out / "adapter_model.safetensors").stat().st_size, "rank": rank, "dropped": round(dropped, 5)}


def round_pairs(data: Path, policy: str, work: Path, rounds: Rounds, seed: int, echo: object = None) -> dict:
    """A round's preference pairs in `work / "pairs"`: critic winners over losers, or real over own (SPIN)."""
    from convoforge.datasets.export import export
    from convoforge.training.sampling import real_pairs, sample_run

    if rounds.kind == "real":
        made = real_pairs(
            data,
            policy,
            work / "pairs",
            rounds.samples,
            rounds.pairs,
            seed=seed,
            force=True,
            drop_leaky=rounds.drop_leaky,
        )
        return {"preference_pairs": made["train"]}
    sampled = sample_run(
        data,
        policy,
        work / "samples",
        rounds.judges(),
        policy,
        rounds.samples,
        limit=rounds.pairs,
        seed=seed,
        force=True,
        drop_leaky=rounds.drop_leaky,
        critic_options=rounds.critic_options or None,
    )
    if echo:
        echo(f"round samples: {json.dumps(sampled)}")
    made = export(work / "samples", "pairs", work / "pairs", force=True, own_prompt=True)
    return {
        "parse_rate": sampled["parse_rate"],
        "acceptance": sampled["acceptance"],
        "conversations": sampled["candidates"],
        "preference_pairs": made["train"],
    }


def preference_round(
    data: Path, adapter: Path, work: Path, settings: object, rounds: Rounds, seed: int = 0, echo: object = None
) -> dict:
    """One on-policy DPO round on top of `adapter`; the two merged into one LoRA in `work / "merged"`.

    The adapter writes `rounds.samples` conversations per SPC train pair in the generator's prompt; their
    preference pairs (`round_pairs`) train DPO + NLL on chosen on top.
    """
    from convoforge.training.lora import train

    policy = f"{settings.base}+adapter={adapter.resolve()}"
    found = round_pairs(data, policy, work, rounds, seed, echo)
    dpo = replace(settings, base=policy, sft_weight=1.0)
    summary = train("dpo", work / "pairs", work / "dpo", dpo, force=True, echo=echo)
    merged = merge_adapters(adapter, work / "dpo", work / "merged", rounds.rank)
    record = json.loads((adapter / "convoforge_training.json").read_text())
    record["kind"] += "+spin" if rounds.kind == "real" else "+dpo"  # e.g. sft+dpo+spin: the rounds in order
    (work / "merged" / "convoforge_training.json").write_text(json.dumps(record, indent=2))
    losses = {"dpo_first_loss": summary["first_loss"], "dpo_last_loss": summary["last_loss"]}
    plan = {"kind": rounds.kind, "pairs": rounds.pairs, "samples": rounds.samples, "drop_leaky": rounds.drop_leaky}
    return plan | found | losses | {"rank": merged["rank"], "energy_dropped": merged["dropped"]}


def train_generator(
    data: Path,
    out: Path,
    settings: object,
    few_shot: int = 1,
    test_limit: int = 60,
    force: bool = False,
    echo: object = None,
    rounds: Rounds | None = None,
    drop_leaky: bool = False,
) -> dict:
    """Build the rows, train the LoRA (then `rounds` of on-policy DPO), measure held-out loss, save with a card.

    `drop_leaky` leaves SPC's conversations with placeholders ("[User 1's name]") out of every row and round.
    """
    from convoforge.training.evaluate import lm_loss
    from convoforge.training.lora import train
    from convoforge.training.sampling import split_rows

    if out.exists() and not force:
        raise ConvoforgeError(f"{out} exists; pass --force to replace it")
    rounds = replace(rounds or Rounds(count=0), drop_leaky=drop_leaky)
    if rounds.critics or rounds.critic_options:  # a bad critic or setting fails before training
        from convoforge.critics.base import judging_once
        from convoforge.critics.plugins import load_critics

        judging_once(load_critics(rounds.judges(), rounds.critic_options), "a train generator round")
    work = out.parent / f".{out.name}.work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        counts = build_export(data, work / "rows", few_shot, settings.seed, drop_leaky)
        summary = train("sft", work / "rows", work / "adapter", settings, force=True, echo=echo)
        adapter, done = work / "adapter", []
        for k in range(rounds.count):
            dpo = replace(settings, steps=rounds.steps, lr=rounds.lr, batch_size=rounds.batch_size)
            here = work / f"round{k + 1}"
            done.append(preference_round(data, adapter, here, dpo, rounds.at(k), settings.seed + k, echo))
            adapter = here / "merged"
        test = split_rows(work / "rows", "test", test_limit, settings.seed)
        before = lm_loss(settings.base, None, test, settings.max_length)
        after = lm_loss(settings.base, adapter, test, settings.max_length)
        staged = out.parent / f".{out.name}.new"
        shutil.rmtree(staged, ignore_errors=True)
        size = compact(adapter, staged)
        command = (
            f"convoforge train generator --data {data} --out {out} --steps {settings.steps} "
            f"--batch-size {settings.batch_size} --lr {settings.lr} --lora-r {settings.lora_r} "
            f"--rounds {rounds.count} --round-pairs {rounds.pairs} --round-samples {rounds.samples} "
            f"--round-steps {rounds.steps} --round-lr {rounds.lr} --round-kind {rounds.kind} "
            f"--round-rank {rounds.rank}{' --drop-leaky' if drop_leaky else ''}"
            f"{f' --drop-leaky-rounds {rounds.drop_leaky_rounds}' if rounds.drop_leaky_rounds else ''}"
            f"{option_flags(rounds)} --force"
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
            "rounds": done,
            "rounds_text": rounds_text(done, rounds),
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
