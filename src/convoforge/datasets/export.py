"""Training sets from what the graphs produce, in TRL's formats, each with a dataset card.

- sft: `messages` (one row per conversation, and one per speaker side with the profile as system)
- pairs: `prompt` / `chosen` / `rejected` (critic winner vs a loser of the same persona pair) + margin
- thumbs: `prompt` / `completion` / `label` (accepted = True, rejected = False), PERL's Taskmaster shape
- retrieval: (conversation context, target item text) pairs from simulated recommender sessions
- profile: (MovieLens history as the summariser's prompt, held-out liked items) for RLPF profile tuning

Every export has a `train` and a `test` split, cut by a hash of the persona pair, session or user, so
no prompt is on both sides.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from datasets import Dataset, DatasetDict

from convoforge.datasets.catalog import load_movielens, open_csv
from convoforge.datasets.prompts import PROFILE
from convoforge.datasets.records import read_dataset, write_dataset
from convoforge.errors import ConvoforgeError

FORMATS = ("sft", "pairs", "thumbs", "retrieval", "profile")
TEST_SHARE = 0.2
EMPTY = {
    "sft": "no accepted conversations",
    "pairs": "no accepted conversation has a parseable, different loser of the same persona pair",
    "thumbs": "no parseable conversations",
    "retrieval": "no session has a user turn with something said",
    "profile": "no user has 3 or more later liked items not rated before",
}
SYSTEM = "You write natural conversations between two people who each have a persona."


def conversation_prompt(profiles: dict[str, list[str]]) -> list[dict]:
    """The generator's task for a persona pair, as chat messages."""
    task = (
        f"User 1 persona: {' '.join(profiles['User 1'])}\nUser 2 persona: {' '.join(profiles['User 2'])}\n"
        "Write their conversation, each turn on its own line starting with 'User 1:' or 'User 2:'."
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": task}]


def record_prompt(record: dict, own: bool = False) -> list[dict]:
    """The generic task for a record's persona pair, or (own) the prompt it was written in where it kept one."""
    if own and record.get("prompt"):
        return json.loads(record["prompt"])
    return conversation_prompt(record["profiles"])


def held_out(key: str, share: float = TEST_SHARE) -> bool:
    """A stable test-split decision from a hash of the key."""
    return int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < share


def pair_splits(rows: list[dict]) -> DatasetDict:
    """Train and test splits, a row's own `split` first, else held out by a hash of its persona pair."""
    names = [r.get("split") or ("test" if held_out(r["pair_id"]) else "train") for r in rows]
    every = Dataset.from_list([{k: v for k, v in r.items() if k != "split"} for r in rows])  # both share features
    return DatasetDict(
        {name: every.select([i for i, n in enumerate(names) if n == name]) for name in ("train", "test")}
    )


def spc_records(path: Path) -> list[dict]:
    """Synthetic-Persona-Chat rows as accepted records (the paper's critic winners); split as the AUC split."""
    from convoforge.critics.faithfulness_data import split_of
    from convoforge.datasets.spc import read_spc

    return [{**example_record(f"spc-{n}", row), "split": split_of(row)} for n, row in enumerate(read_spc(path))]


def example_record(rid: str, example: dict) -> dict:
    """A {profiles, turns} example (SPC row, shipped seed) as an accepted record the exporters read."""
    messages = [{"speaker": s, "content": t} for s, t in example["turns"]]
    return {"id": rid, "pair_id": rid, "profiles": example["profiles"], "messages": messages}


def best_and_worst(rated: list[dict], top: int) -> list[dict]:
    """The `top` best and a few worst of ratings sorted best first, each movie once (what a profile shows)."""
    return list({r["movieId"]: r for r in rated[:top] + rated[-max(3, top // 5) :]}.values())


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


def sft_rows(accepted: list[dict], own: bool = False) -> list[dict]:
    """Whole conversations, plus each speaker's side given its own profile."""
    rows = []
    for r in accepted:
        rows.append(
            {
                "id": r["id"],
                "pair_id": r["pair_id"],
                "kind": "conversation",
                "messages": [
                    *record_prompt(r, own),
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
                side = f"{r['id']}-{me.replace(' ', '').lower()}"
                rows.append({"id": side, "pair_id": r["pair_id"], "kind": "side", "messages": turns})
    return rows


def pair_rows(accepted: list[dict], rejected: list[dict], own: bool = False) -> list[dict]:
    """Winner vs each loser of the same pair with something to say, and the experts' margin; ties are skipped."""
    losers: dict[str, list[dict]] = {}
    for r in rejected:
        if r["messages"]:
            losers.setdefault(r["pair_id"], []).append(r)
    rows = []
    for win in accepted:
        for lose in losers.get(win["pair_id"], []):
            if transcript(lose["messages"]) == transcript(win["messages"]):
                continue  # identical texts carry no preference
            margin = round(quality(win) - quality(lose), 4)
            if lose["reason"].startswith("lost the vote") and margin <= 0:
                continue  # passed every filter and no expert preferred the winner: a tie, not a preference
            rows.append(
                {
                    "id": f"{win['id']}>{lose['id']}",
                    "pair_id": win["pair_id"],
                    "profiles": win["profiles"],
                    "prompt": record_prompt(win, own),
                    "chosen": [{"role": "assistant", "content": transcript(win["messages"])}],
                    "rejected": [{"role": "assistant", "content": transcript(lose["messages"])}],
                    "margin": margin,
                    "rejected_reason": lose["reason"],
                }
            )
    return rows


def thumbs_rows(accepted: list[dict], rejected: list[dict], own: bool = False) -> list[dict]:
    """Pointwise thumbs up (accepted) and down (rejected, parseable ones)."""
    return [
        {
            "id": r["id"],
            "pair_id": r["pair_id"],
            "profiles": r["profiles"],
            "prompt": record_prompt(r, own),
            "completion": [{"role": "assistant", "content": transcript(r["messages"])}],
            "label": label,
        }
        for rows, label in ((accepted, True), (rejected, False))
        for r in rows
        if r["messages"]
    ]


def retrieval_rows(sessions: list[dict]) -> list[dict]:
    """(what the user has said up to each turn, a target item's text) pairs from simulated sessions."""
    rows = []
    for s in sessions:
        said: list[str] = []
        texts = s.get("target_texts") or s["target_names"]
        for m in s["messages"]:
            if m["role"] != "user" or m["intent"] in {"accept", "leave"} or not m["content"].strip():
                continue
            said.append(m["content"])
            rows += [
                {"id": f"{s['id']}-{len(said)}-{i}", "pair_id": s["id"], "anchor": " ".join(said), "positive": text}
                for i, text in enumerate(texts)
            ]
    return rows


def history_lines(entries: list[dict]) -> str:
    """A rated history as the profile prompt lists it."""
    return "\n".join(
        f"- {h['title']} ({h['genres']}): {h['rating']}" + (f", tags: {', '.join(h['tags'])}" if h["tags"] else "")
        for h in entries
    )


def profile_rows(ratings: Path, future: float = 0.2, min_liked: int = 3, top: int = 15) -> list[dict]:
    """Per MovieLens user: the summariser's prompt from the earlier ratings, the later liked items held out."""
    movies = ratings.parent / "movies.csv"
    if not ratings.is_file() or not movies.is_file():
        raise ConvoforgeError(f"{ratings} is not a MovieLens ratings.csv with movies.csv beside it")
    catalog = load_movielens(movies)
    by_user: dict[str, list[dict]] = {}
    with open_csv(ratings, {"userId", "movieId", "rating", "timestamp"}, "a MovieLens ratings.csv") as reader:
        for r in reader:
            if r["movieId"] in catalog.by_id:
                by_user.setdefault(r["userId"], []).append(r)
    rows = []
    for user, rated in by_user.items():
        rated.sort(key=lambda r: int(r["timestamp"]))
        cut = int(len(rated) * (1 - future))
        past = sorted(rated[:cut], key=lambda r: -float(r["rating"]))
        seen = {r["movieId"] for r in past}
        liked = list(
            dict.fromkeys(r["movieId"] for r in rated[cut:] if float(r["rating"]) >= 4 and r["movieId"] not in seen)
        )
        if len(liked) < min_liked or not past:
            continue
        shown = best_and_worst(past, top)
        entries = [
            {
                "title": catalog.by_id[r["movieId"]].name,
                "genres": catalog.by_id[r["movieId"]].fields["genre"],
                "rating": float(r["rating"]),
                "tags": [],
            }
            for r in shown
        ]
        rows.append(
            {
                "id": f"user-{user}",
                "pair_id": f"user-{user}",
                "prompt": [{"role": "user", "content": PROFILE.format(history=history_lines(entries))}],
                "history": sorted(seen),
                "held_out": liked,
                "held_out_names": [catalog.by_id[i].name for i in liked],
                "catalog": str(movies.resolve()),
            }
        )
    return rows


def source_rows(data: Path, fmt: str, own: bool = False) -> list[dict]:
    """The rows of one format from a generated dataset, a Synthetic-Persona-Chat CSV or MovieLens ratings."""
    if fmt not in FORMATS:
        raise ConvoforgeError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "profile":
        return profile_rows(data)
    if data.suffix == ".csv":
        if fmt != "sft":
            raise ConvoforgeError(f"a Synthetic-Persona-Chat CSV gives sft rows only, not {fmt}")
        records = spc_records(data)
        rows = sft_rows(records)
        split = {r["pair_id"]: r["split"] for r in records}
        return [{**row, "split": split[row["pair_id"]]} for row in rows]
    source = read_dataset(data)
    if fmt == "retrieval":
        if "sessions" not in source:
            raise ConvoforgeError(f"{data} has no simulated sessions (write them with `convoforge simulate`)")
        return retrieval_rows(list(source["sessions"]))
    if "accepted" not in source or "rejected" not in source:
        raise ConvoforgeError(f"{data} is not a persona dataset (needs splits accepted and rejected)")
    accepted, rejected = list(source["accepted"]), list(source["rejected"])
    return {
        "sft": lambda: sft_rows(accepted, own),
        "pairs": lambda: pair_rows(accepted, rejected, own),
        "thumbs": lambda: thumbs_rows(accepted, rejected, own),
    }[fmt]()


def export(data: Path | list[Path], fmt: str, out: Path, force: bool = False, own_prompt: bool = False) -> dict:
    """Build one training set (train and test splits) from what the graphs wrote, with a card.

    Several sources (e.g. generation runs, whose pair ids restart at `it0-p0`) get `run{i}-` id prefixes.
    With `own_prompt`, persona rows keep the prompt each conversation was written in (what trains the generator
    itself, as `train generator --rounds` does); otherwise the short generic task.
    """
    sources = [data] if isinstance(data, Path) else list(data)
    rows = []
    for i, source in enumerate(sources):
        prefix = f"run{i}-" if len(sources) > 1 else ""
        found = source_rows(source, fmt, own_prompt)
        rows += [{**r, "id": prefix + r["id"], "pair_id": prefix + r["pair_id"]} for r in found]
    data = sources[0] if len(sources) == 1 else ", ".join(map(str, sources))
    if not rows:
        raise ConvoforgeError(f"{data} yields no {fmt} rows ({EMPTY[fmt]})")
    splits = pair_splits(rows)
    train, test = splits["train"], splits["test"]
    if not len(train):
        raise ConvoforgeError(f"{data} yields {len(rows)} {fmt} rows, all in the held-out split; export more data")
    summary = {"format": fmt, "rows": len(rows), "train": len(train), "test": len(test), "source": str(data)}
    card = "\n".join(
        [
            "---",
            f"tags: [convoforge, {fmt}, trl]",
            "---",
            "",
            f"# convoforge {fmt} export",
            "",
            next(line for line in __doc__.splitlines() if line.startswith(f"- {fmt}:")),
            "",
            __doc__.split("\n\n")[2],
            "",
            "```json",
            json.dumps(summary, indent=2),
            "```",
            "",
        ]
    )
    write_dataset(splits, card, out, force=force)
    return summary
