"""In-domain signals learned from ReDial-format training dialogues: co-mention, recommended prior, MovieLens CF."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse

from convoforge.datasets.catalog import REDIAL_DIALOGUES, Catalog, open_csv, read_jsonl
from convoforge.errors import ConvoforgeError

_MENTION = re.compile(r"@(\w+)")


def redial_turns(path: Path, catalog: Catalog) -> list[dict]:
    """iEvaLM-format turns from raw ReDial dialogues: one per recommender utterance that names a catalogue film.

    Consecutive messages of one speaker are one utterance; `@id` becomes the film's `Title (Year)`.
    Each turn also keeps `seen` (ids named before it) and `targets` (ids it names).
    """
    if not path.is_file():
        raise ConvoforgeError(f"no training dialogues at {path}")
    turns = []
    for n, dialog in enumerate(read_jsonl(path, REDIAL_DIALOGUES), 1):
        if not isinstance(dialog.get("messages"), list) or "respondentWorkerId" not in dialog:
            raise ConvoforgeError(f"{path}: dialogue {n} is not ReDial format (needs 'messages', 'respondentWorkerId')")
        names = {str(k): str(v).strip() for k, v in (dialog.get("movieMentions") or {}).items() if v}
        utterances: list[tuple[object, str, list[str]]] = []
        for message in dialog["messages"]:
            text = str(message.get("text", ""))
            ids = [i for i in _MENTION.findall(text) if i in catalog.by_id]

            def name(m: re.Match, names: dict = names) -> str:
                item = catalog.by_id.get(m.group(1))
                return item.name if item else names.get(m.group(1), "a movie")

            text = _MENTION.sub(name, text)
            sender = message.get("senderWorkerId")
            if utterances and utterances[-1][0] == sender:
                utterances[-1] = (sender, utterances[-1][1] + " " + text, utterances[-1][2] + ids)
            else:
                utterances.append((sender, text, ids))
        seen: list[str] = []
        for i, (sender, text, ids) in enumerate(utterances):
            if sender == dialog["respondentWorkerId"] and ids and i > 0:
                targets = [x for x in dict.fromkeys(ids)]
                turns.append(
                    {
                        "dialog_id": str(dialog.get("conversationId", n)),
                        "turn_id": i,
                        "context": [u[1] for u in utterances[:i]],
                        "rec": [catalog.by_id[x].name for x in targets],
                        "resp": text,
                        "seen": list(dict.fromkeys(seen)),
                        "targets": targets,
                    }
                )
            seen += ids
    if not turns:
        raise ConvoforgeError(f"{path}: no recommender turn names a film of the catalogue")
    return turns


def dialogue_pairs(paths: list[Path], catalog: Catalog) -> list[tuple[str, str]]:
    """(the last two utterances, the recommended item's text) for every recommendation of the dialogues."""
    pairs = []
    for path in paths:
        for t in redial_turns(path, catalog):
            anchor = " ".join([u for u in t["context"] if u.strip()][-2:])
            pairs += [(anchor, catalog.by_id[x].text()) for x in t["targets"]]
    return pairs


def files_key(paths: list[Path]) -> str:
    """A short hash of the training files' contents (the cache key of everything learned from them)."""
    digest = hashlib.sha256()
    for p in sorted(paths):
        digest.update(p.read_bytes())
    return digest.hexdigest()[:16]


@dataclass
class Signals:
    """Item-to-item co-mention counts (seen -> recommended) and how often each item was recommended."""

    comention: sparse.csr_matrix  # rows: an item named earlier; columns: an item the recommender then named
    recommended: np.ndarray  # per item: times the recommender named it
    cooccur: sparse.csr_matrix  # symmetric: named in the same dialogue

    @classmethod
    def from_turns(cls, turns: list[dict], size: int, index_of: dict[str, int]) -> Signals:
        """Count the signals over turns (each from `redial_turns`)."""
        rows, cols, rec = [], [], np.zeros(size, dtype=np.float32)
        by_dialog: dict[str, set[int]] = {}
        for t in turns:
            seen = [index_of[x] for x in t["seen"] if x in index_of]
            targets = [index_of[x] for x in t["targets"] if x in index_of]
            for b in targets:
                rec[b] += 1
                for a in seen:
                    if a != b:
                        rows.append(a)
                        cols.append(b)
            by_dialog.setdefault(t["dialog_id"], set()).update(seen + targets)
        comention = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(size, size))
        r2, c2 = [], []
        for members in by_dialog.values():
            m = sorted(members)
            for a in m:
                for b in m:
                    if a != b:
                        r2.append(a)
                        c2.append(b)
        cooccur = sparse.csr_matrix((np.ones(len(r2), np.float32), (r2, c2)), shape=(size, size))
        comention.sum_duplicates()
        cooccur.sum_duplicates()
        return cls(comention, rec, cooccur)

    def scores(self, rows: list[int]) -> dict[str, np.ndarray]:
        """Per catalogue item, each signal's score given the items named so far (rows)."""
        size = self.recommended.shape[0]
        prior = np.log1p(self.recommended)
        if not rows:
            zero = np.zeros(size, dtype=np.float32)
            return {"comention": zero, "cooccur": zero, "prior": prior}
        # conditional share: how often b followed a, over how often a was followed by anything (smoothed)
        block = self.comention[rows]
        out_deg = np.asarray(block.sum(axis=1)).ravel() + 1.0
        comention = np.asarray((sparse.diags(1.0 / out_deg) @ block).sum(axis=0)).ravel()
        co = self.cooccur[rows]
        co_deg = np.asarray(co.sum(axis=1)).ravel() + 1.0
        cooccur = np.asarray((sparse.diags(1.0 / co_deg) @ co).sum(axis=0)).ravel()
        return {"comention": comention.astype(np.float32), "cooccur": cooccur.astype(np.float32), "prior": prior}


class MovieLensCF:
    """Item-to-item collaborative filtering from MovieLens ratings, joined to the catalogue by IMDb id."""

    def __init__(self, folder: Path, catalog: Catalog, min_rating: float = 4.0) -> None:
        links, ratings = folder / "links.csv", folder / "ratings.csv"
        if not links.is_file() or not ratings.is_file():
            raise ConvoforgeError(f"{folder} needs MovieLens links.csv and ratings.csv")
        row_of = {}
        for i, it in enumerate(catalog.items):
            imdb = it.fields.get("imdb_id", "").strip().lower().removeprefix("tt").lstrip("0")
            if imdb:
                row_of[imdb] = i
        movie_row: dict[str, int] = {}
        with open_csv(links, {"movieId", "imdbId"}, "a MovieLens links.csv") as reader:
            for rec in reader:
                imdb = (rec.get("imdbId") or "").strip().lstrip("0")
                if imdb in row_of:
                    movie_row[rec["movieId"]] = row_of[imdb]
        rows, users, user_ids = [], [], {}
        with open_csv(ratings, {"userId", "movieId", "rating"}, "a MovieLens ratings.csv") as reader:
            for rec in reader:
                if float(rec["rating"]) >= min_rating and rec["movieId"] in movie_row:
                    rows.append(movie_row[rec["movieId"]])
                    users.append(user_ids.setdefault(rec["userId"], len(user_ids)))
        matrix = sparse.csr_matrix(
            (np.ones(len(rows), np.float32), (rows, users)), shape=(len(catalog), max(len(user_ids), 1))
        )
        matrix.data[:] = 1.0
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel()) + 1e-9
        self.matrix = sparse.diags(1.0 / norms) @ matrix  # unit rows: a dot product is a cosine
        self.joined = len(set(movie_row.values()))

    def scores(self, rows: list[int]) -> np.ndarray:
        """Mean cosine of each catalogue item to the items named so far."""
        if not rows:
            return np.zeros(self.matrix.shape[0], dtype=np.float32)
        query = np.asarray(self.matrix[rows].sum(axis=0)).ravel()
        return (self.matrix @ query / len(rows)).astype(np.float32)
