"""Graph state of the recommender."""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict


class Preferences(TypedDict, total=False):
    """The running preference state extracted from the conversation."""

    liked: list[str]
    disliked: list[str]
    constraints: list[str]


class RecState(TypedDict, total=False):
    """One conversation with the recommender."""

    messages: Annotated[list[dict], operator.add]
    preferences: Preferences
    profile: str
    decision: dict
    candidates: list[dict]
    recommendations: list[dict]
    shown: list[str]
    rejected: list[str]
    request: dict  # the standing constraints (requests.Request fields)
    route: str  # where the manager sent this turn: retrieve or respond
    focus: list[dict]  # the card an "explain" turn is about
    reply: str
