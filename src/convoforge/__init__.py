"""convoforge: conversational agents and synthetic conversation data."""

__version__ = "0.1.0"
