"""Run-time settings of the persona generator (LangGraph context_schema)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class PersonaContext:
    """Every threshold and count of the pipeline; defaults follow the paper where it gives one."""

    iterations: int = 3
    pairs: int = 8
    candidates: int = 3
    few_shot: int = 5
    few_shot_nearest: int = 0
    winner_share: float | None = None
    min_turns: int = 6
    max_turns: int = 7
    temperature: float = 0.7
    top_k: int = 40
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    max_tokens: int = 600
    query_cluster_distance: float = 0.1
    query_steps: int = 4
    persona_target: int = 16
    duplicate_cosine: float = 0.9
    profile_size: int = 5
    profiles: int = 0
    check_contradictions: bool = True
    pair_cluster_distance: float = 0.6
    pair_threshold: int = 2
    recitation_cap: float = 0.34
    tune_steps: int = 0
    tune_lr: float = 2e-4
    shard_size: int = 1
    seed: int = 0

    def as_dict(self) -> dict:
        """Plain dict (stored with the run and in the dataset card)."""
        return asdict(self)

    @property
    def n_profiles(self) -> int:
        """How many profiles to build (default: enough for distinct pairs)."""
        return self.profiles or max(8, 2 * self.pairs)
