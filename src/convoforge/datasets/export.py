"""Training sets from what the graphs produce, in TRL's formats, each with a dataset card.

- sft: `messages` (one row per conversation, and one per speaker side with the profile as system)
- pairs: `prompt` / `chosen` / `rejected` (critic winner vs a loser of the same persona pair) + margin
- thumbs: `prompt` / `completion` / `label` (accepted = True, rejected = False), PERL's Taskmaster shape
- retrieval: (conversation context, target item) pairs from simulated recommender sessions
"""

from __future__ import annotations

import json
from pathlib import Path

from datasets import Dataset, DatasetDict

from convoforge.datasets.records import read_dataset, write_dataset
from convoforge.errors import ConvoforgeError

FORMATS = ("sft", "pairs", "thumbs", "retrieval")
SYSTEM = "You write natural conversations between two people who each have a persona."


def conversation_prompt(profiles: dict[str, list[str]]) -> list[dict]:
    """The generator's task for a persona pair, as chat messages."""
    task = (
        f"User 1 persona: {' '.join(profiles['User 1'])}\nUser 2 persona: {' '.join(profiles['User 2'])}\n"
        "Write their conversation, each turn on its own line starting with 'User 1:' or 'User 2:'."
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": task}]


def transcript(messages: list[dict]) -> str:
    """`User 1: ...` lines."""
    return "\n".join(f"{m['speaker']}: {m['content']}" for m in messages)


def quality(row: dict) -> float:
    """Mean valid quality-expert score of a record (0 when none)."""
    scores = [
        v["score"]
        for v in row["verdicts"]
        if v["critic"].startswith("quality") and v["valid"] and v["score"] is not None
    ]
    return sum(scores) / len(scores) if scores else 0.0


def sft_rows(accepted: list[dict]) -> list[dict]:
    """Whole conversations, plus each speaker's side given its own profile."""
    rows = []
    for r in accepted:
        rows.append(
            {
                "id": r["id"],
                "kind": "conversation",
                "messages": [
                    *conversation_prompt(r["profiles"]),
                    {"role": "assistant", "content": transcript(r["messages"])},
                ],
            }
        )
        for me in ("User 1", "User 2"):
            system = f"You are {me}. Your persona: {' '.join(r['profiles'][me])} Stay in character."
            turns = [{"role": "system", "content": system}]
            for m in r["messages"]:
                role = "assistant" if m["speaker"] == me else "user"
                if turns[-1]["role"] == role:
                    turns[-1] = {"role": role, "content": turns[-1]["content"] + "\n" + m["content"]}
                else:
                    turns.append({"role": role, "content": m["content"]})
            if turns[-1]["role"] == "user":
                turns.pop()
            if any(t["role"] == "assistant" for t in turns):
                rows.append({"id": f"{r['id']}-{me.replace(' ', '').lower()}", "kind": "side", "messages": turns})
    return rows


def pair_rows(accepted: list[dict], rejected: list[dict]) -> list[dict]:
    """Winner vs each parseable loser of the same pair, with the experts' margin."""
    losers: dict[str, list[dict]] = {}
    for r in rejected:
        if r["messages"]:
            losers.setdefault(r["pair_id"], []).append(r)
    rows = []
    for win in accepted:
        for lose in losers.get(win["pair_id"], []):
            if transcript(lose["messages"]) == transcript(win["messages"]):
                continue  # identical texts carry no preference
            rows.append(
                {
                    "id": f"{win['id']}>{lose['id']}",
                    "prompt": conversation_prompt(win["profiles"]),
                    "chosen": [{"role": "assistant", "content": transcript(win["messages"])}],
                    "rejected": [{"role": "assistant", "content": transcript(lose["messages"])}],
                    "margin": round(quality(win) - quality(lose), 4),
                    "rejected_reason": lose["reason"],
                }
            )
    return rows


def thumbs_rows(accepted: list[dict], rejected: list[dict]) -> list[dict]:
    """Pointwise thumbs up (accepted) and down (rejected, parseable ones)."""
    return [
        {
            "id": r["id"],
            "prompt": conversation_prompt(r["profiles"]),
            "completion": [{"role": "assistant", "content": transcript(r["messages"])}],
            "label": label,
        }
        for rows, label in ((accepted, True), (rejected, False))
        for r in rows
        if r["messages"]
    ]


def retrieval_rows(sessions: list[dict]) -> list[dict]:
    """(what the user said so far, a target item name) pairs from simulated sessions."""
    rows = []
    for s in sessions:
        said = [m["content"] for m in s["messages"] if m["role"] == "user" and m["intent"] != "accept"]
        if said:
            rows += [
                {"id": f"{s['id']}-{i}", "anchor": " ".join(said), "positive": name}
                for i, name in enumerate(s["target_names"])
            ]
    return rows


def export(data: Path, fmt: str, out: Path, force: bool = False) -> dict:
    """Build one training set from a generated dataset and write it with a card."""
    if fmt not in FORMATS:
        raise ConvoforgeError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    source = read_dataset(data)
    if fmt == "retrieval":
        if "sessions" not in source:
            raise ConvoforgeError(f"{data} has no simulated sessions (write them with `convoforge simulate`)")
        rows = retrieval_rows(list(source["sessions"]))
    else:
        if "accepted" not in source or "rejected" not in source:
            raise ConvoforgeError(f"{data} is not a persona dataset (needs splits accepted and rejected)")
        accepted, rejected = list(source["accepted"]), list(source["rejected"])
        rows = {
            "sft": lambda: sft_rows(accepted),
            "pairs": lambda: pair_rows(accepted, rejected),
            "thumbs": lambda: thumbs_rows(accepted, rejected),
        }[fmt]()
    if not rows:
        raise ConvoforgeError(f"{data} yields no {fmt} rows (nothing accepted, or no losers to pair with)")
    summary = {"format": fmt, "rows": len(rows), "source": str(data)}
    card = "\n".join(
        [
            "---",
            f"tags: [convoforge, {fmt}, trl]",
            "---",
            "",
            f"# convoforge {fmt} export",
            "",
            __doc__.split("\n\n")[1],
            "",
            "```json",
            json.dumps(summary, indent=2),
            "```",
            "",
        ]
    )
    write_dataset(DatasetDict({"train": Dataset.from_list(rows)}), card, out, force=force)
    return summary
