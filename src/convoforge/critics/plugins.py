"""Finding critics: built-ins, `module:attr` import paths, and the `convoforge.critics` entry points."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, TypeAdapter, ValidationError

from convoforge.critics.base import Critic, Verdict
from convoforge.critics.faithfulness import FaithfulnessExpert, LLMFaithfulnessExpert
from convoforge.critics.prompts import FED_POLICIES
from convoforge.critics.quality import QualityExpert
from convoforge.critics.toxicity import LLMToxicityExpert, ToxicityExpert
from convoforge.errors import ConvoforgeError

ENTRY_POINT_GROUP = "convoforge.critics"

BUILTINS: dict[str, Callable[..., Critic]] = {
    **{f"quality_{d}": partial(QualityExpert, d) for d in FED_POLICIES},
    **{f"quality_{d}_{m}": partial(QualityExpert, d, method=m) for m in ("prompted", "trained") for d in FED_POLICIES},
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


def buildable(obj: Any) -> bool:
    """Whether `obj` builds a critic when called (a class or a partial of one), rather than being one."""
    return inspect.isclass(obj) or (isinstance(obj, partial) and inspect.isclass(obj.func))


def settings_of(factory: Any) -> dict[str, tuple[Any, Any]]:
    """A buildable critic's settings: its constructor's keyword arguments, each as (type hint, default)."""
    if not buildable(factory):
        return {}
    cls = factory.func if isinstance(factory, partial) else factory
    bound = set(factory.keywords) if isinstance(factory, partial) else set()
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # an annotation that does not resolve: fall back to the defaults' types
        hints = {}
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return {}
    found = {}
    for p in params:
        if p.kind in kinds and p.name not in bound and not p.name.startswith("_"):
            default = None if p.default is inspect.Parameter.empty else p.default
            found[p.name] = (hints.get(p.name) or (type(default) if default is not None else Any), default)
    return found


def describe_type(hint: Any) -> str:
    """A type hint as a user reads it: `float | None` is 'a number or null'."""
    words = {float: "a number", int: "a whole number", str: "text", bool: "true or false", Path: "a path"}
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(json.dumps(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if hint in words:
        return words[hint]
    if args := typing.get_args(hint):
        return " or ".join(dict.fromkeys(describe_type(a) for a in args))
    return re.sub(r"\b(?:\w+\.)+(\w+)", r"\1", getattr(hint, "__name__", str(hint)))


def check_setting(name: str, key: str, value: Any, hint: Any) -> Any:
    """A setting's JSON value checked (strictly) against its type hint; a one-line error if it does not fit."""
    try:
        adapter = TypeAdapter(hint, config=ConfigDict(arbitrary_types_allowed=True))
    except Exception:  # a hint pydantic cannot build a validator for (it names a config of its own)
        return value
    try:
        try:
            text = json.dumps(value)
        except TypeError:  # an object given from Python (an Embedder): checked as it is
            return adapter.validate_python(value, strict=True)
        return adapter.validate_json(text, strict=True)
    except ValidationError:
        raise ConvoforgeError(f"critic {name!r} setting {key!r} takes {describe_type(hint)}, not {value!r}") from None


def as_critic(obj: Any, ref: str, settings: dict | None = None, name: str | None = None) -> Critic:
    """Build classes (with `settings` as constructor arguments), wrap functions, and check the contract."""
    settings, name = settings or {}, name or ref
    if buildable(obj):
        known = settings_of(obj) if settings else {}  # read the constructor only when there is something to set
        for key in settings:
            if key not in known:
                listed = ", ".join(known) or "none"
                raise ConvoforgeError(f"critic {name!r} has no setting {key!r} (its settings: {listed})")
        kwargs = {k: check_setting(name, k, v, known[k][0]) for k, v in settings.items()}
        try:
            obj = obj(**kwargs)
        except (TypeError, OSError, ValueError) as exc:
            given = f"with {kwargs}" if kwargs else "without arguments"
            raise ConvoforgeError(f"critic {ref!r} cannot be built {given}: {exc}") from exc
    elif settings:
        what = "a function" if inspect.isfunction(obj) else "an object"
        raise ConvoforgeError(f"critic {ref!r} is {what}, not a class: it takes no settings ({', '.join(settings)})")
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


def resolve(ref: str) -> Any:
    """What a reference names, unbuilt: a built-in name, an installed entry-point name, or `module.path:Attr`."""
    if ref in BUILTINS:
        return BUILTINS[ref]
    installed = _entry_points()
    if ref in installed:
        try:
            return installed[ref].load()
        except ImportError as exc:
            raise ConvoforgeError(f"critic entry point {ref!r} failed to import: {exc}") from exc
    module, sep, attr = ref.partition(":")
    if not sep:
        known = ", ".join([*BUILTINS, *installed])
        raise ConvoforgeError(f"unknown critic {ref!r}: use one of {known}, or module.path:Name")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConvoforgeError(f"cannot import critic {ref!r}: {exc}") from exc


def name_of(obj: Any, ref: str, build: bool = False) -> str:
    """The name a critic's settings are keyed by; with `build`, a default build's (a name may be set when built)."""
    if ref in BUILTINS:
        return ref
    if build and buildable(obj):
        with contextlib.suppress(ConvoforgeError):  # a class that needs arguments keeps its class-level name
            return as_critic(obj, ref).name
    found = getattr(obj, "name", None)
    return found if isinstance(found, str) else getattr(obj, "__name__", ref)


def load_critic(ref: str, settings: dict | None = None) -> Critic:
    """A built-in name, an installed entry-point name, or `module.path:Attr`, built with `settings`."""
    return as_critic(resolve(ref), ref, settings)


def critic_refs(critic: list[str], add_critic: list[str]) -> list[str]:
    """The critics that `--critic` (default: the built-in mixture) and `--add-critic` name together."""
    return [*(critic or DEFAULT_CRITICS), *add_critic]


def load_critics(refs: list[str], options: dict[str, dict] | None = None) -> list[Critic]:
    """Load critics with per-critic settings (keyed by critic name); refuse duplicate names and unknown settings."""
    options = options or {}
    found = [(ref, resolve(ref)) for ref in refs]
    names = [name_of(obj, ref) for ref, obj in found]
    if set(options) - set(names):  # a name set when the critic is built: build each once without settings to see
        names = [name_of(obj, ref, build=True) for ref, obj in found]
    if unknown := sorted(set(options) - set(names)):
        raise ConvoforgeError(f"settings for critic {unknown[0]!r}, which this run does not have ({', '.join(names)})")
    critics = [as_critic(obj, ref, options.get(n), n) for (ref, obj), n in zip(found, names, strict=True)]
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
    settings: str = ""


def settings_line(factory: Any) -> str:
    """A critic's settings with their defaults, as `--critic-option` takes them: `drop_share=0.5, least=6`."""
    parts = []
    for key, (_, default) in settings_of(factory).items():
        try:
            parts.append(f"{key}={json.dumps(default)}")
        except TypeError:
            parts.append(key)
    return ", ".join(parts)


def list_critics() -> list[CriticInfo]:
    """Built-ins and installed entry points, with where each comes from."""
    built = {n: f() for n, f in BUILTINS.items()}  # each built once
    rows = [CriticInfo(n, c.role, "built-in", c.description, settings_line(BUILTINS[n])) for n, c in built.items()]
    for name, ep in sorted(_entry_points().items()):
        dist = ep.dist.name if ep.dist else "?"
        try:
            obj = ep.load()
            critic = as_critic(obj, name)
            source = f"entry point {ep.value} ({dist})"
            rows.append(CriticInfo(name, critic.role, source, critic.description, settings_line(obj)))
        except (ImportError, ConvoforgeError) as exc:
            rows.append(CriticInfo(name, "?", f"entry point {ep.value} ({dist})", f"broken: {exc}"))
    return rows
