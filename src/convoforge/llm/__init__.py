"""Chat-model backends behind one small interface, and the embedder."""

from convoforge.llm.base import ChatModel, run_sync
from convoforge.llm.spec import BACKENDS, DEFAULT_MODEL, load_chat_model, parse_spec, release_chat_model
from convoforge.llm.structured import astructured, structured
from convoforge.llm.types import (
    ChatResult,
    GenParams,
    Message,
    StructuredResult,
    Usage,
    draw_seed,
    keyed_rng,
    keyed_seed,
)

__all__ = [
    "BACKENDS",
    "DEFAULT_MODEL",
    "ChatModel",
    "ChatResult",
    "GenParams",
    "Message",
    "StructuredResult",
    "Usage",
    "astructured",
    "draw_seed",
    "keyed_rng",
    "keyed_seed",
    "load_chat_model",
    "parse_spec",
    "release_chat_model",
    "run_sync",
    "structured",
]
