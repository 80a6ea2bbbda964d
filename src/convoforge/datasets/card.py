"""Dataset cards (README.md) for generated persona dialogues."""

from __future__ import annotations

import json


def persona_card(
    *,
    accepted: int,
    rejected: int,
    models: dict,
    critics: list[dict],
    settings: dict,
    stats: list[dict],
    metrics: dict,
    seed_source: str,
    log_counts: dict,
) -> str:
    """Markdown card: counts, models, critics, thresholds, per-iteration table, metrics."""
    lines = [
        "---",
        "license: cc-by-4.0",
        "task_categories: [text-generation]",
        "tags: [synthetic, persona, dialogue, convoforge]",
        "configs:",
        "  - config_name: default",
        "    data_files:",
        "      - {split: accepted, path: accepted.parquet}",
        "      - {split: rejected, path: rejected.parquet}",
        "---",
        "",
        "# Synthetic persona dialogues (convoforge Generator-Critic)",
        "",
        "Made with the Generator-Critic method of Synthetic-Persona-Chat (Jandaghi et al. 2023,",
        "arXiv 2312.10007): persona expansion, profiles, pairing, few-shot generation, a mixture",
        "of critic experts, and winners fed back as few-shot examples.",
        "",
        f"- accepted conversations: **{accepted}**; rejected candidates: **{rejected}**",
        f"- generator model: `{models['generator']}`; critic model: `{models['critic']}`",
        f"- seeds: {seed_source}",
        f"- stage log: {json.dumps(log_counts)}",
        "",
        "## Critics",
        "",
        "| critic | role | what it does |",
        "|---|---|---|",
        *[f"| {c['name']} | {c['role']} | {c['description']} |" for c in critics],
        "",
        "Selection: candidates failing a filter critic are dropped; the winner of each pair is",
        "the candidate with most votes of the quality experts (ties: mean quality score).",
        "",
        "## Per iteration",
        "",
        "| iteration | candidates | accepted | rejected | few-shot pool | rejection reasons | mean scores |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in stats:
        means = ", ".join(f"{k}={v['mean']}" for k, v in s["critics"].items() if v["mean"] is not None)
        lines.append(
            f"| {s['iteration']} | {s['candidates']} | {s['accepted']} | {s['rejected']} | {s['few_shot_pool']} "
            f"| {json.dumps(s['rejection_reasons'])} | {means} |"
        )
    lines += [
        "",
        "## Metrics (accepted split)",
        "",
        "```json",
        json.dumps(metrics, indent=2),
        "```",
        "",
        "## Settings",
        "",
        "```json",
        json.dumps(settings, indent=2),
        "```",
        "",
        "Files: `hf/` (`datasets.load_from_disk`), `accepted.jsonl`/`rejected.jsonl`, `*.parquet`.",
        "Re-measure: `convoforge eval personas --data THIS_FOLDER`.",
        "",
    ]
    return "\n".join(lines)
