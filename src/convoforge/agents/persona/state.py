"""Graph state of the persona generator; all values are JSON-friendly for checkpointing."""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict


def extend_or_reset(old: list | None, new: list | None) -> list:
    """Append new items; writing None empties the list (start of an iteration)."""
    return [] if new is None else [*(old or []), *new]


def merge_or_reset(old: dict | None, new: dict | None) -> dict:
    """Merge per-critic verdict maps; writing None empties them."""
    if new is None:
        return {}
    merged = dict(old or {})
    for critic, verdicts in new.items():
        merged[critic] = {**merged.get(critic, {}), **verdicts}
    return merged


class PersonaState(TypedDict, total=False):
    """What flows between the nodes."""

    seed_attributes: list[str]
    seed_examples: list[dict]
    queries: list[str]
    new_attributes: list[str]
    profiles: list[list[str]]
    pairs: list[list[int]]
    pool: list[dict]
    iteration: int
    generator: str  # the spec of the generator tuned on the winners so far ("": the run's own)
    tuned: Annotated[list[dict], operator.add]
    candidates: Annotated[list[dict], extend_or_reset]
    verdicts: Annotated[dict[str, dict[str, dict]], merge_or_reset]
    accepted: Annotated[list[dict], operator.add]
    rejected: Annotated[list[dict], operator.add]
    log: Annotated[list[dict], operator.add]
    stats: Annotated[list[dict], operator.add]


class GenerateInput(TypedDict):
    """What one `generate` task (one pair) receives through Send."""

    pair_id: str
    iteration: int
    profiles: dict[str, list[str]]
    examples: list[dict]


class ShardInput(TypedDict, total=False):
    """What one `conversations` task (a shard of pairs) receives through Send."""

    jobs: list[GenerateInput]
    generator: str  # a tuned generator's spec; absent or "": the run's own


class ShardState(TypedDict, total=False):
    """State of the conversation graph that one shard runs: its jobs, their candidates and verdicts."""

    jobs: list[GenerateInput]
    candidates: Annotated[list[dict], extend_or_reset]
    verdicts: Annotated[dict[str, dict[str, dict]], merge_or_reset]
