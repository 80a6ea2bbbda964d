"""User simulators and the simulation loop."""

from convoforge.simulators.leak import leaks, remove_leaks
from convoforge.simulators.user import SimulatedUser, UserControls, choose_intent

__all__ = ["SimulatedUser", "UserControls", "choose_intent", "leaks", "remove_leaks"]
