"""Critic experts (graph nodes), selection and plugin discovery."""

from convoforge.critics.base import Candidate, Critic, Turn, Verdict
from convoforge.critics.plugins import DEFAULT_CRITICS, list_critics, load_critic, load_critics
from convoforge.critics.selection import Outcome, select

__all__ = [
    "DEFAULT_CRITICS",
    "Candidate",
    "Critic",
    "Outcome",
    "Turn",
    "Verdict",
    "list_critics",
    "load_critic",
    "load_critics",
    "select",
]
