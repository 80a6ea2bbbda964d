"""CLI commands that train models: `convoforge train ...`."""

from __future__ import annotations

import json
import random
from pathlib import Path

import typer

from convoforge.app.cli import critic_option_flag, critic_settings, err, eval_app, train_app
from convoforge.errors import ConvoforgeError


@train_app.command("faithfulness")
def train_faithfulness(
    data: Path = typer.Option(..., help="A Synthetic-Persona-Chat CSV (its held-out 40% is never used)."),
    out_dir: Path = typer.Option(..., "--out", help="Where to save the tuned embedder."),
    epochs: float = typer.Option(1.0, min=0.01, help="Passes over the training pairs."),
    steps: int = typer.Option(-1, help="Stop after this many steps (-1: whole epochs)."),
    batch_size: int = typer.Option(32, min=2, help="Pairs per batch (the in-batch negatives)."),
    lr: float = typer.Option(5e-5, help="Learning rate."),
    symmetric: bool = typer.Option(True, help="Also rank attributes for each text (the attribute-level task)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out."),
) -> None:
    """Tune MiniLM so persona attributes land near what their speaker says (in-batch negatives).

    Example: convoforge train faithfulness --data spc/Synthetic-Persona-Chat_valid.csv --out models/faith
    """
    from convoforge.critics.faithfulness_data import attribute_pairs, split_of
    from convoforge.datasets.spc import read_spc
    from convoforge.training.embedder import tune_embedder

    if not data.is_file():
        raise ConvoforgeError(f"no CSV at {data}")
    rows = [r for r in read_spc(data) if split_of(r) == "train"]
    pairs = attribute_pairs(rows)
    random.Random(0).shuffle(pairs)
    summary = tune_embedder(
        pairs, out_dir, epochs=epochs, max_steps=steps, batch_size=batch_size, lr=lr, symmetric=symmetric, force=force
    )
    typer.echo(json.dumps({"out": str(out_dir), "train_conversations": len(rows), **summary}))


LORA_COMMANDS = {
    "sft": ("sft", 2e-4, "LoRA SFT (TRL SFTTrainer + PEFT) on accepted conversations; assistant-only loss."),
    "reward": ("pairs", 2e-4, "LoRA reward model (TRL RewardTrainer + PEFT) on critic preference pairs (PERL)."),
    "dpo": ("pairs", 5e-5, "LoRA DPO (TRL DPOTrainer + PEFT) on critic winners vs losers."),
    "rl": ("pairs", 1e-4, "LoRA RL (TRL RLOOTrainer + PEFT), the LoRA reward model as reward, KL to the base (PERL)."),
    "profile": (
        "profile",
        1e-4,
        "RLPF: tune the profile summariser with RLOO; reward = held-out liked items retrieved.",
    ),
}


def _lora_command(kind: str, fmt: str, default_lr: float, summary: str) -> None:
    """Register `convoforge train KIND`: the LoRA trainers share their options."""

    def command(
        data: Path = typer.Option(..., help=f"An `export --format {fmt}` folder (its train split)."),
        out_dir: Path = typer.Option(..., "--out", help="Where to save the LoRA adapter."),
        base: str = typer.Option("local:smollm2-135m", help="Local base model spec."),
        steps: int = typer.Option(50, min=1, help="Optimizer steps."),
        lr: float = typer.Option(default_lr, help="Learning rate."),
        lora_r: int = typer.Option(16, min=1, help="LoRA rank."),
        lora_alpha: int = typer.Option(32, min=1, help="LoRA alpha."),
        batch_size: int = typer.Option(2, min=1, help="Rows (rl, profile: prompts) per step."),
        max_length: int = typer.Option(512, min=32, help="Longest tokenised row (sft, reward, dpo)."),
        reward_model: Path | None = typer.Option(None, help="rl: a `convoforge train reward` folder."),
        realism: bool = typer.Option(
            False,
            "--realism",
            help="rl: reward realism instead (a real-vs-own discriminator fitted on --data, a "
            "`generate samples --real-chosen` export).",
        ),
        generations: int = typer.Option(4, min=2, help="rl, profile: samples per prompt (RLOO's k)."),
        new_tokens: int = typer.Option(96, min=4, help="rl, profile: most tokens per sample."),
        kl: float = typer.Option(0.05, min=0.0, help="rl, profile: KL coefficient to the base model."),
        sft_weight: float = typer.Option(
            0.0, min=0.0, help="dpo: weight of the chosen answers' NLL added to the DPO loss (RPO); 0: plain DPO."
        ),
        resume: bool = typer.Option(False, "--resume", help="Continue from the run's last checkpoint."),
        force: bool = typer.Option(False, "--force", help="Replace an existing --out."),
    ) -> None:
        from convoforge.training.lora import LoraSettings, train

        settings = LoraSettings(
            base=base,
            steps=steps,
            lr=lr,
            lora_r=lora_r,
            lora_alpha=lora_alpha,
            batch_size=batch_size,
            max_length=max_length,
            generations=generations,
            new_tokens=new_tokens,
            kl=kl,
            sft_weight=sft_weight,
        )
        result = train(
            kind,
            data,
            out_dir,
            settings,
            force=force or resume,
            resume=resume,
            reward_model=reward_model,
            echo=err.print,
            realism=realism,
        )
        typer.echo(json.dumps({k: v for k, v in result.items() if k not in {"losses", "rewards"}}))

    extra = " --reward-model models/reward" if kind == "rl" else ""
    example = f"convoforge train {kind} --data out/{fmt} --out models/{kind}{extra} --steps 50"
    command.__doc__ = f"{summary}\n\n    Example: {example}\n    "
    train_app.command(kind)(command)


for _kind, (_fmt, _lr, _summary) in LORA_COMMANDS.items():
    _lora_command(_kind, _fmt, _lr, _summary)


@train_app.command("generator")
def train_generator_command(
    data: Path = typer.Option(..., help="A Synthetic-Persona-Chat CSV (its held-out 40% is never trained on)."),
    out_dir: Path = typer.Option(..., "--out", help="Where to save the compact generator adapter and its card."),
    steps: int = typer.Option(60, min=1, help="Optimizer steps."),
    batch_size: int = typer.Option(4, min=1, help="Rows per step."),
    lr: float = typer.Option(2e-4, help="Learning rate."),
    lora_r: int = typer.Option(16, min=1, help="LoRA rank."),
    few_shot: int = typer.Option(1, min=0, help="Few-shot example conversations in each training prompt."),
    max_length: int = typer.Option(1024, min=64, help="Longest tokenised row."),
    rounds: int = typer.Option(0, min=0, help="On-policy DPO rounds after the SFT (sample, judge, DPO, merge)."),
    round_pairs: str = typer.Option(
        "40", help="Train persona pairs sampled in each round; a comma list (40,50) takes them in turn."
    ),
    round_samples: str = typer.Option(
        "6", help="Conversations per persona pair in each round (at least 2); a comma list takes them in turn."
    ),
    round_steps: int = typer.Option(40, min=1, help="DPO optimizer steps in each round."),
    round_lr: float = typer.Option(1e-4, help="DPO learning rate."),
    round_kind: str = typer.Option(
        "critics",
        help="critics: critic winners over losers; real: the real conversation over own samples (SPIN); a comma "
        "list (critics,real) takes them in turn.",
    ),
    round_rank: int = typer.Option(32, min=1, help="Rank the merged adapter is cut to (truncated SVD): file size."),
    drop_leaky: bool = typer.Option(
        False, "--drop-leaky", help="Leave out SPC conversations with placeholders ('[User 1's name]') everywhere."
    ),
    drop_leaky_rounds: str = typer.Option(
        "", help="Rounds (1-based, comma list: 3,4) that leave out SPC conversations with placeholders."
    ),
    critic: list[str] = typer.Option(
        [], "--critic", help="Critic name or module:Name judging the critics rounds; repeat. Default: the built-in."
    ),
    add_critic: list[str] = typer.Option(
        [], "--add-critic", help="A critic to add to the default mixture (or to --critic's) for those rounds; repeat."
    ),
    critic_option: list[str] = critic_option_flag(),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out (once the new one is done)."),
) -> None:
    """LoRA SFT of the persona generator in its own prompt, then on-policy DPO rounds; rebuilds the shipped one.

    Example: convoforge train generator --data spc/Synthetic-Persona-Chat_valid.csv --out models/generator
    """
    from convoforge.critics.plugins import critic_refs
    from convoforge.training.generator import Rounds, train_generator
    from convoforge.training.lora import LoraSettings

    settings = LoraSettings(
        steps=steps, lr=lr, lora_r=lora_r, lora_alpha=2 * lora_r, batch_size=batch_size, max_length=max_length
    )
    plan = Rounds(
        rounds,
        round_pairs,
        round_samples,
        round_steps,
        round_lr,
        kind=round_kind,
        rank=round_rank,
        drop_leaky_rounds=drop_leaky_rounds,
        critics=tuple(critic_refs(critic, add_critic) if critic or add_critic else ()),
        critic_options=critic_settings(critic_option),
    )
    result = train_generator(
        data, out_dir, settings, few_shot=few_shot, force=force, echo=err.print, rounds=plan, drop_leaky=drop_leaky
    )
    typer.echo(json.dumps(result))


@train_app.command("lexical")
def train_lexical_command(
    data: list[Path] = typer.Option(
        ..., help="A `generate samples --real-chosen` export of the policy (real over own); repeat to combine."
    ),
    out: Path = typer.Option(..., "--out", help="The logit-bias JSON to write (use it as MODEL+bias=FILE)."),
    base: str = typer.Option("local:smollm2-135m", help="The local model whose tokenizer numbers the tokens."),
    alpha: float = typer.Option(1.0, min=0.0, help="Strength: bias = alpha * log(p_real / p_own)."),
    min_count: int = typer.Option(20, min=1, help="Fewest occurrences (real + own) of a biased token."),
    min_z: float = typer.Option(2.0, min=0.0, help="Smallest log-odds z-score of a biased token."),
    clip: float = typer.Option(2.0, min=0.0, help="Largest bias in either direction."),
    profile_words: bool = typer.Option(
        False, "--profile-words", help="Count the persona pairs' own content words too (topic, not only style)."
    ),
    prior: str | None = typer.Option(
        None, help="The prior --data was sampled with (file or shipped name): write it plus this fit (a round)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out."),
) -> None:
    """Fit a lexical prior: token logit biases that move a generator's word use towards real conversations.

    Example: convoforge train lexical --data out/real-vs-own --out models/generator/logit_bias.json
    """
    from convoforge.training.lexical import train_lexical

    summary = train_lexical(
        data,
        out,
        base,
        force=force,
        keep_profile_words=profile_words,
        prior=prior,
        alpha=alpha,
        min_count=min_count,
        min_z=min_z,
        clip=clip,
    )
    typer.echo(json.dumps(summary))


@train_app.command("retriever")
def train_retriever(
    data: Path | None = typer.Option(None, help="An `export --format retrieval` folder (simulated sessions)."),
    train: list[Path] = typer.Option(
        [], "--train", help="ReDial-format training dialogues (repeatable): real (context, recommended item) pairs."
    ),
    catalog: Path | None = typer.Option(
        None, help="With --train: the catalogue its films refer to (default ReDial's)."
    ),
    out_dir: Path = typer.Option(..., "--out", help="Where to save the tuned embedder."),
    epochs: float = typer.Option(1.0, min=0.01, help="Passes over the (context, item) pairs."),
    steps: int = typer.Option(-1, help="Stop after this many steps (-1: whole epochs)."),
    batch_size: int = typer.Option(32, min=2, help="Pairs per batch (the in-batch negatives)."),
    lr: float = typer.Option(5e-5, help="Learning rate."),
    query_only: bool = typer.Option(
        False, "--query-only", help="Tune a query tower only; item vectors stay the base model's (frozen)."
    ),
    seed: int = typer.Option(0, help="Seed of the pair order and of the trainer (a replicate run)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out."),
) -> None:
    """Tune the MiniLM dual encoder on (context, item) pairs with in-batch negatives (RecLLM).

    Pairs come from simulated sessions (--data), real training dialogues (--train), or both.

    Example: convoforge train retriever --train redial/train_dialogs.jsonl --out models/retriever
    """
    from convoforge.training.embedder import tune_embedder
    from convoforge.training.lora import load_split

    if data is None and not train:
        raise ConvoforgeError("pass --data (simulated sessions), --train (ReDial dialogues) or both")
    pairs = []
    if data is not None:
        rows = load_split(data)
        if not {"anchor", "positive"} <= set(rows.column_names):
            raise ConvoforgeError(f"{data} has columns {rows.column_names}; retriever needs anchor and positive")
        pairs += list(zip(rows["anchor"], rows["positive"], strict=True))
    if train:
        from convoforge.agents.recommender.signals import dialogue_pairs
        from convoforge.app.rec_cli import default_catalog
        from convoforge.datasets.catalog import load_catalog

        pairs += dialogue_pairs(train, load_catalog(catalog or default_catalog()))
    random.Random(seed).shuffle(pairs)
    summary = tune_embedder(
        pairs,
        out_dir,
        epochs=epochs,
        max_steps=steps,
        batch_size=batch_size,
        lr=lr,
        query_only=query_only,
        seed=seed,
        force=force,
    )
    typer.echo(json.dumps({"out": str(out_dir), "seed": seed, **summary}))


@eval_app.command("sft")
def eval_sft(
    data: Path = typer.Option(..., help="An `export --format sft` folder (e.g. from the SPC CSV); its test split."),
    adapter: Path = typer.Option(..., help="A `convoforge train sft` adapter."),
    base: str = typer.Option("local:smollm2-135m", help="Local base model spec."),
    limit: int = typer.Option(200, min=1, help="Held-out rows to score (a seeded sample)."),
) -> None:
    """Held-out assistant-token loss and perplexity, base vs base + adapter.

    Example: convoforge eval sft --data out/spc-sft --adapter models/sft
    """
    from convoforge.training.evaluate import sft_report

    typer.echo(json.dumps(sft_report(data, adapter, base, limit)))


@eval_app.command("reward")
def eval_reward(
    data: Path = typer.Option(..., help="An `export --format pairs` folder; its test split."),
    reward_model: Path = typer.Option(..., help="A `convoforge train reward` folder."),
    limit: int | None = typer.Option(None, min=1, help="Held-out pairs to score."),
) -> None:
    """Pairwise accuracy of the reward model on held-out preference pairs.

    Example: convoforge eval reward --data out/pairs --reward-model models/reward
    """
    from convoforge.training.evaluate import reward_report

    typer.echo(json.dumps(reward_report(data, reward_model, limit)))


@eval_app.command("policy")
def eval_policy(
    data: Path = typer.Option(..., help="A pairs or thumbs export: its held-out persona pairs are the prompts."),
    adapter: list[Path] = typer.Option(..., help="Tuned adapters to compare with the base (dpo, rl); repeatable."),
    reward_model: Path = typer.Option(..., help="A `convoforge train reward` folder to score generations."),
    base: str = typer.Option("local:smollm2-135m", help="Local base model spec."),
    critic: list[str] = typer.Option(None, help="Critics judging acceptance (default: the built-in experts)."),
    critic_option: list[str] = critic_option_flag(),
    critic_model: str | None = typer.Option(None, help="Model spec of the critics (default: the base)."),
    pairs: int = typer.Option(12, min=1, help="Held-out persona pairs."),
    samples: int = typer.Option(2, min=1, help="Generations per pair and policy."),
    min_turns: int = typer.Option(3, min=1, help="Fewest turns per user for a candidate to parse."),
) -> None:
    """Fresh generations before/after DPO or RL: mean reward-model score, critic acceptance, win share.

    Example: convoforge eval policy --data out/pairs --adapter models/dpo --reward-model models/reward
    """
    from convoforge.critics.plugins import DEFAULT_CRITICS
    from convoforge.training.evaluate import policy_report

    policies = {"base": base, **{a.name: f"{base}+adapter={a}" for a in adapter}}
    critics, judge_with = critic or DEFAULT_CRITICS, critic_model or base
    options = critic_settings(critic_option)
    report = policy_report(
        data, policies, reward_model, critics, judge_with, samples, pairs, min_turns, critic_options=options
    )
    typer.echo(json.dumps(report))


@eval_app.command("profile")
def eval_profile(
    data: Path = typer.Option(..., help="An `export --format profile` folder; its held-out users."),
    adapter: Path = typer.Option(..., help="A `convoforge train profile` adapter."),
    base: str = typer.Option("local:smollm2-135m", help="Local base model spec."),
    limit: int = typer.Option(60, min=1, help="Held-out users."),
) -> None:
    """RLPF: how well summaries predict held-out liked items (recall@50 via the retriever), and their length.

    Example: convoforge eval profile --data out/profile --adapter models/profile
    """
    from convoforge.training.evaluate import profile_report

    typer.echo(json.dumps(profile_report(data, adapter, base, limit)))
