"""Finding critics: built-ins, `module:attr` import paths, and the `convoforge.critics` entry points."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from convoforge.critics.base import Critic, Verdict
from convoforge.critics.faithfulness import FaithfulnessExpert, LLMFaithfulnessExpert
from convoforge.critics.prompts import FED_POLICIES
from convoforge.critics.quality import QualityExpert
from convoforge.critics.toxicity import LLMToxicityExpert, ToxicityExpert
from convoforge.errors import ConvoforgeError

ENTRY_POINT_GROUP = "convoforge.critics"

BUILTINS: dict[str, Callable[[], Critic]] = {
    **{f"quality_{d}": (lambda d=d: QualityExpert(d)) for d in FED_POLICIES},
    **{
        f"quality_{d}_{m}": (lambda d=d, m=m: QualityExpert(d, method=m))
        for m in ("prompted", "trained")
        for d in FED_POLICIES
    },
    "faithfulness": FaithfulnessExpert,
    "faithfulness_llm": LLMFaithfulnessExpert,
    "toxicity": ToxicityExpert,
    "toxicity_llm": LLMToxicityExpert,
}
DEFAULT_CRITICS = [*(f"quality_{d}" for d in FED_POLICIES), "faithfulness", "toxicity"]


class FunctionCritic(Critic):
    """Wraps a plain function `(candidate) -> Verdict | float | bool` (or with `llm`)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.name = getattr(fn, "critic_name", fn.__name__)
        self.role = getattr(fn, "role", "quality")
        self.reads = tuple(getattr(fn, "reads", ("turns",)))
        self.description = (inspect.getdoc(fn) or "").splitlines()[0] if inspect.getdoc(fn) else ""
        self._wants_llm = "llm" in inspect.signature(fn).parameters

    def judge_one(self, candidate: Any, llm: Any) -> Verdict | Any:
        """Call the wrapped function."""
        return self.fn(candidate, llm=llm) if self._wants_llm else self.fn(candidate)


def as_critic(obj: Any, ref: str) -> Critic:
    """Instantiate classes, wrap functions, and check the contract."""
    if inspect.isclass(obj):
        try:
            obj = obj()
        except TypeError as exc:
            raise ConvoforgeError(f"critic {ref!r} cannot be built without arguments: {exc}") from exc
    elif callable(obj) and not hasattr(obj, "judge"):
        obj = FunctionCritic(obj)
    if not hasattr(obj, "judge") or not isinstance(getattr(obj, "name", None), str):
        raise ConvoforgeError(f"{ref!r} is not a critic: it needs a name and judge()/judge_one()")
    if isinstance(obj, Critic) and type(obj).judge is Critic.judge and not callable(getattr(obj, "judge_one", None)):
        raise ConvoforgeError(f"critic {ref!r} overrides neither judge_one() nor judge(): it has nothing to judge with")
    if getattr(obj, "role", None) not in {"quality", "filter"}:
        raise ConvoforgeError(f"critic {ref!r} has role {getattr(obj, 'role', None)!r}; use 'quality' or 'filter'")
    return obj


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_critic(ref: str) -> Critic:
    """A built-in name, an installed entry-point name, or `module.path:Attr`."""
    if ref in BUILTINS:
        return BUILTINS[ref]()
    installed = _entry_points()
    if ref in installed:
        try:
            return as_critic(installed[ref].load(), ref)
        except ImportError as exc:
            raise ConvoforgeError(f"critic entry point {ref!r} failed to import: {exc}") from exc
    module, sep, attr = ref.partition(":")
    if not sep:
        known = ", ".join([*BUILTINS, *installed])
        raise ConvoforgeError(f"unknown critic {ref!r}: use one of {known}, or module.path:Name")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConvoforgeError(f"cannot import critic {ref!r}: {exc}") from exc
    return as_critic(obj, ref)


def load_critics(refs: list[str], options: dict[str, dict] | None = None) -> list[Critic]:
    """Load critics, set per-critic options (e.g. a threshold), refuse duplicate names and unknown settings."""
    critics = [load_critic(r) for r in refs]
    if unknown := sorted(set(options or {}) - {c.name for c in critics}):
        names = ", ".join(c.name for c in critics)
        raise ConvoforgeError(f"settings for critic {unknown[0]!r}, which this run does not have ({names})")
    for critic in critics:
        for key, value in (options or {}).get(critic.name, {}).items():
            if key.startswith("_") or not hasattr(critic, key) or callable(getattr(critic, key)):
                raise ConvoforgeError(f"critic {critic.name!r} has no setting {key!r}")
            current = getattr(critic, key)
            number = isinstance(current, (int, float)) and not isinstance(current, bool)
            if number and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ConvoforgeError(f"critic {critic.name!r} setting {key!r} takes a number, not {value!r}")
            if isinstance(current, str) and not isinstance(value, str):
                raise ConvoforgeError(f"critic {critic.name!r} setting {key!r} takes text, not {value!r}")
            setattr(critic, key, value)
    names = [c.name for c in critics]
    if dup := sorted({n for n in names if names.count(n) > 1}):
        raise ConvoforgeError(f"two critics share the name {dup[0]!r}")
    return critics


@dataclass
class CriticInfo:
    """One row of `convoforge critics list`."""

    name: str
    role: str
    source: str
    description: str


def list_critics() -> list[CriticInfo]:
    """Built-ins and installed entry points, with where each comes from."""
    rows = [CriticInfo(n, f().role, "built-in", f().description) for n, f in BUILTINS.items()]
    for name, ep in sorted(_entry_points().items()):
        dist = ep.dist.name if ep.dist else "?"
        try:
            critic = as_critic(ep.load(), name)
            rows.append(CriticInfo(name, critic.role, f"entry point {ep.value} ({dist})", critic.description))
        except (ImportError, ConvoforgeError) as exc:
            rows.append(CriticInfo(name, "?", f"entry point {ep.value} ({dist})", f"broken: {exc}"))
    return rows
