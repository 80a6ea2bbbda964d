"""Dataset cards (README.md) for generated persona dialogues."""

from __future__ import annotations

import json
import textwrap

DISCRIMINATOR_NOTE = (
    "cross-validated logistic regression on MiniLM turn vectors and text statistics (a persona pair's"
    " conversations in one fold), real (the held-out reference conversations that pass the conversation hygiene:"
    " no template text, placeholder or loop; cut to the generated per-user turn counts) vs accepted; 0.5 means"
    " indistinguishable; by_embedding / by_statistics: the same on the turn vectors alone (what is said) / on the"
    " text statistics alone (how: turn length and spread, questions, exclamations, distinct-1/2, recitation)"
)


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
    quality: dict | None = None,
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
        f"- generator model: `{models['generator']}`; critic model: `{models['critic']}`; "
        f"persona expansion: `{models.get('expansion', models['generator'])}`",
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
    learned = [(s["iteration"], name, fit) for s in stats for name, fit in s.get("learned", {}).items()]
    if learned:
        lines += ["", "Critics that learn over the run, before each iteration's selection:", ""]
        lines += [f"- iteration {it}, {name}: {json.dumps(fit)}" for it, name, fit in learned]
    if quality:
        lines += ["", *quality_section(quality)]
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


QUALITY_KEYS = (
    "conversations",
    "discriminator_accuracy",
    "discriminator_per_class",
    "discriminator_by_embedding",
    "discriminator_by_statistics",
    "degenerate_rate",
    "recitation_rate",
    "prompt_leak_rate",
    "placeholder_rate",
    "unfinished_rate",
    "small_talk_rate",
    "turns_per_user",
    "distinct_1",
    "distinct_2",
)


def quality_section(quality: dict) -> list[str]:
    """Markdown table of the critic-independent measures: accepted and every candidate, overall and per iteration."""
    columns = [k for k in QUALITY_KEYS if k in quality["generated"] or k in quality.get("reference", {})]
    rows = [("accepted, all iterations", quality["generated"])]
    rows += [(f"accepted, iteration {q['iteration']}", q) for q in quality.get("per_iteration", [])]
    if every := quality.get("candidates"):
        rows.append(("every candidate, all iterations", every))
        rows += [(f"every candidate, iteration {q['iteration']}", q) for q in every.get("per_iteration", [])]
    if "reference" in quality:
        rows.append((f"reference ({quality.get('reference_source', 'real conversations')})", quality["reference"]))
    lines = [
        "## Quality without the critic",
        "",
        *textwrap.wrap(f"Discriminator: {DISCRIMINATOR_NOTE}.", 110),
        "Degenerate: a loop (a long turn said again, a block of turns repeated) or a speaker echoing the other.",
        "Recitation: share of turns that copy their speaker's persona sentence word for word.",
        "Placeholder: a template slot or stage direction ('[name]', '(user 2's name)') in a turn.",
        "Unfinished: the last turn stops mid-sentence (no closing mark): cut by the token limit, or a real 'Bye'.",
        "",
        "| | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for name, values in rows:
        cells = ("" if values.get(k) is None else str(values[k]) for k in columns)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + trend_lines(quality.get("iterations", {}))


def trend_lines(trends: dict) -> list[str]:
    """The first and the last iteration's discriminator at the same count, winners and every candidate."""
    lines = []
    for name, t in trends.items():
        if t.get("difference") is None:
            continue
        if "per_iteration" in t:  # `shared_trend`: one classifier of the run, the winners scored out of fold
            lines.append(shared_line(t))
            continue
        first, last = (f"{t[k]:.3f} ± {t[k + '_sd']:.3f}" for k in ("first", "last"))
        its = " and ".join(f"iteration {i}" for i in t["iterations"])
        lines.append(
            f"- {name.replace('_', ' ')}, {its} at the same count ({t['per_class']} a side, {t['draws']} draws):"
            f" {first} then {last} ({t['difference']:+.3f}; below 0: the last reads more real)"
        )
    return ["", "Whether iterations help:", "", *lines] if lines else []


def shared_line(t: dict) -> str:
    """One line of `shared_trend`: each iteration's winners by one classifier of the whole run."""
    parts = {p["iteration"]: p for p in t["per_iteration"]}
    first, last = (parts[i] for i in t["iterations"])
    return (
        f"- winners, scored by one classifier of the run on {t.get('judge', 'its features')} ({t['generated']}"
        f" conversations against {t['real']} real, out of fold): iteration {first['iteration']}"
        f" {first['accuracy']:.3f} ({first['winners']} winners) then iteration {last['iteration']}"
        f" {last['accuracy']:.3f} ({last['winners']}) ({t['difference']:+.3f}; a last winner reads more generated"
        f" than a first {t['last_over_first']:.2f} of the time, Mann-Whitney p {t['mannwhitney_p']})"
    )
