"""Run-time settings of the recommender (LangGraph context_schema)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RecContext:
    """Per-call settings: whose profile, how many items to retrieve, rank and show."""

    user_id: str = "anonymous"
    k: int = 50
    rank_top: int = 5
    show: int = 3
    use_llm: bool = True
    llm_manager: bool = True  # with use_llm: the LLM decides the action; off: the rules do (rule_decision)
    llm_ranker: bool = True  # with use_llm: the LLM's fit reorders the top items; off: retrieval order stays
