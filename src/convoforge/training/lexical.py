"""A lexical prior for a generator: per-token logit biases from real vs own token frequencies.

Sampling from p(t | context) * (p_real(t) / p_own(t)) ** alpha moves the generator's word use towards the real
conversations' (a unigram density-ratio correction, applied as the logit bias every serving engine takes).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

from convoforge.errors import ConvoforgeError

LABELS = ("User 1:", "User 2:", "\n")  # transcript scaffolding: the same in both, never biased
SUFFIXES = "(?:s|es|ing|ed|er|ers)?"  # a profile word's common inflections ("painter" -> "painting")
GENERIC_SHARE = 0.25  # a word in more persona pairs' profiles than this is how people talk ("like"), not a topic
SENTENCE_MARKS = frozenset("!?.")  # may be raised like words (.44 of real SPC turns hold a "!"); brackets may not

CARD = """# Lexical prior (token logit biases) for `{base}`

Use: `MODEL+bias={name}` (local and OpenAI-compatible backends; token ids of `{base}`'s tokenizer).

- Data: {real} real conversations (the chosen side, SPC's placeholder conversations left out) and {own} of the
  policy's own samples (the rejected side) of {data}: `generate samples --real-chosen` exports, train persona
  pairs only.
- Topic words: {topics}
- Fit: bias = {alpha} x log(p_real / p_own) per token (add-half smoothing), clipped to +-{clip}, for {fitted}
  tokens seen at least {min_count} times whose log-odds z-score is at least {min_z}; only words and sentence marks
  are raised.
- {stacked}
- Lowered most: {lowered}
- Raised most: {raised}
- Rebuild: `{command}`
"""


def profile_words(profiles: Any) -> set[str]:
    """The content words of a persona pair's profiles (lower case, no stop words, three letters or more)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    sentences = [s for group in profiles.values() for s in group or []] if isinstance(profiles, dict) else []
    return {w for s in sentences for w in re.findall(r"[a-z]+", s.lower()) if len(w) > 2} - ENGLISH_STOP_WORDS


def profile_pattern(profiles: Any, keep: frozenset[str] = frozenset()) -> re.Pattern | None:
    """A pattern of a persona pair's content words and their inflections, except those to keep (None: no words)."""
    stems = {re.sub("(?<=[a-z]{3})" + SUFFIXES + "$", "", w) for w in profile_words(profiles) - keep}
    if not stems:
        return None
    forms = (re.escape(w) + f"{re.escape(w[-1])}?" for w in sorted(stems, key=len, reverse=True))
    return re.compile(r" ?\b(?:" + "|".join(forms) + ")" + SUFFIXES + r"\b", re.IGNORECASE)  # "swim" -> "swimming"


def without_profile_words(text: str, profiles: Any, keep: frozenset[str] = frozenset()) -> str:
    """The text with its persona pair's content words (and their inflections) taken out, except those to keep."""
    pattern = profile_pattern(profiles, keep)
    return pattern.sub("", text) if pattern else text


def token_counts(texts: list[str], tokenizer: Any) -> Counter:
    """How often each token id occurs in the texts, tokenised as the model writes them."""
    counts: Counter = Counter()
    for text in texts:
        counts.update(tokenizer(text, add_special_tokens=False)["input_ids"])
    return counts


def fit_logit_bias(
    real: list[str],
    own: list[str],
    tokenizer: Any,
    *,
    alpha: float = 1.0,
    min_count: int = 20,
    min_z: float = 2.0,
    clip: float = 2.0,
) -> dict[int, float]:
    """Token id -> alpha * log(p_real / p_own), clipped, for tokens seen min_count times whose ratio is sure (|z|)."""
    if not real or not own:
        raise ConvoforgeError(f"a lexical prior needs real and own texts (got {len(real)} real, {len(own)} own)")
    skip = {i for label in LABELS for i in tokenizer(label, add_special_tokens=False)["input_ids"]}
    r, o = token_counts(real, tokenizer), token_counts(own, tokenizer)
    nr, no = sum(r.values()), sum(o.values())
    bias: dict[int, float] = {}
    for tok in set(r) | set(o):
        if tok in skip:
            continue
        if r[tok] + o[tok] < min_count:
            continue
        ratio = math.log((r[tok] + 0.5) / (nr + 1)) - math.log((o[tok] + 0.5) / (no + 1))
        if abs(ratio) / math.sqrt(1 / (r[tok] + 0.5) + 1 / (o[tok] + 0.5)) < min_z:  # log-odds z-score
            continue
        text = tokenizer.decode([tok])
        if ratio > 0 and not (any(ch.isalpha() for ch in text) or text.strip() in SENTENCE_MARKS):
            continue  # raising brackets or digits invites placeholders ("[name]"); lowering any token is safe
        value = max(-clip, min(clip, alpha * ratio))
        if abs(value) >= 0.05:
            bias[int(tok)] = round(value, 4)
    return dict(sorted(bias.items()))


def stack_biases(prior: dict[int, float], step: dict[int, float], clip: float) -> dict[int, float]:
    """A further round: the prior the samples were drawn with plus the correction fitted on them, clipped."""
    total = {t: max(-clip, min(clip, prior.get(t, 0.0) + step.get(t, 0.0))) for t in set(prior) | set(step)}
    return {t: round(v, 4) for t, v in sorted(total.items()) if abs(v) >= 0.05}


def real_and_own(data: list[Path], keep_profile_words: bool = False) -> tuple[list[str], list[str]]:
    """The real (chosen) and own (rejected) transcripts of `generate samples --real-chosen` exports, both splits.

    Unless keep_profile_words, each transcript loses its persona pair's content words: the prior is fitted on style,
    not on what the personas talk about (lowering "painter" would cut faithfulness, not realism). Words in more
    than GENERIC_SHARE of the pairs' profiles ("like", "love", "work") are style and stay.
    """
    from convoforge.agents.persona.hygiene import leaks
    from convoforge.datasets.records import read_dataset
    from convoforge.datasets.spc import parse_transcript
    from convoforge.training.profile import completion_text

    rows: list[dict] = []
    for folder in data:
        for split in read_dataset(folder).values():
            for row in split:
                if not (isinstance(row.get("chosen"), list) and isinstance(row.get("rejected"), list)):
                    raise ConvoforgeError(f"{folder} is not a preference export (`generate samples --real-chosen`)")
                rows.append(row)
    pairs = {str(row.get("pair_id") or i): row.get("profiles") for i, row in enumerate(rows)}
    shares = Counter(w for profiles in pairs.values() for w in profile_words(profiles))
    generic = frozenset(w for w, n in shares.items() if n > GENERIC_SHARE * len(pairs))
    real: dict[str, None] = {}
    own: list[str] = []
    for row in rows:
        chosen, rejected = completion_text(row["chosen"]), completion_text(row["rejected"])
        pattern = None if keep_profile_words else profile_pattern(row.get("profiles"), generic)
        if pattern:  # built once per row, for both sides
            chosen, rejected = pattern.sub("", chosen), pattern.sub("", rejected)
        if not leaks(parse_transcript(chosen)):  # SPC's placeholders are not what real people write
            real[chosen] = None
        own.append(rejected)
    return list(real), own


def train_lexical(
    data: list[Path],
    out: Path,
    base: str,
    *,
    force: bool = False,
    keep_profile_words: bool = False,
    prior: str | None = None,
    **fit: Any,
) -> dict:
    """Fit the lexical prior of a policy from its real-chosen samples; write it to out (JSON) and its card (.md).

    fit holds all four of fit_logit_bias's alpha, min_count, min_z and clip (the card names them). With prior (the
    logit-bias file or shipped name the samples were drawn with), the result is a further round: that prior plus
    the correction the samples still call for.
    """
    from transformers import AutoTokenizer

    from convoforge.llm.local import resolve_weights
    from convoforge.llm.spec import SHIPPED_BIASES, parse_spec, read_logit_bias, shipped_or_path

    for path in (out, out.with_suffix(".md")):
        if path.exists() and not force:
            raise ConvoforgeError(f"{path} exists: pass --force to replace it")
    backend, ref, _ = parse_spec(base)
    if backend != "local":
        raise ConvoforgeError(f"--base must be a local model (its tokenizer numbers the tokens), not {base!r}")
    start = read_logit_bias(prior) if prior else {}  # before out is written: out may be the prior's own file
    fitted_for = json.loads(shipped_or_path(prior, SHIPPED_BIASES).read_text()).get("base", base) if prior else base
    if fitted_for != base:  # token ids of another tokenizer: adding them up would bias unrelated tokens
        raise ConvoforgeError(f"--prior {prior} was fitted for {fitted_for}, not --base {base}")
    tokenizer = AutoTokenizer.from_pretrained(resolve_weights(ref))
    real, own = real_and_own(data, keep_profile_words)
    step = fit_logit_bias(real, own, tokenizer, **fit)
    bias = stack_biases(start, step, fit["clip"]) if prior else step
    ranked = sorted(bias, key=bias.get)
    summary = {
        "base": base,
        "data": [str(d) for d in data],
        "real": len(real),
        "own": len(own),
        "tokens": len(bias),
        "fitted": len(step),
        "prior": prior,
        "profile_words": keep_profile_words,
        **fit,
        "lowered": [tokenizer.decode([t]) for t in ranked[:15]],
        "raised": [tokenizer.decode([t]) for t in ranked[::-1][:15] if bias[t] > 0],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    write_logit_bias(out, bias, summary)
    words = {k: ", ".join(repr(w.strip()) for w in summary[k][:10]) for k in ("lowered", "raised")}
    command = f"convoforge train lexical {' '.join(f'--data {d}' for d in data)} --base {base} --out {out} " + (
        " ".join(f"--{k.replace('_', '-')} {v}" for k, v in fit.items())
    )
    command += " --profile-words" if keep_profile_words else ""
    command += f" --prior {prior}" if prior else ""
    topics = (
        "kept (the counts include the persona pairs' own content words)"
        if keep_profile_words
        else "each transcript's persona content words (and inflections) are left out of the counts"
    )
    stacked = (
        f"Round on top of: `{prior}` ({len(start)} tokens; the samples were drawn with it on): its biases plus this"
        f" fit's, clipped to +-{fit['clip']}; {len(bias)} tokens in all"
        if prior
        else "A first round (no prior under it)"
    )
    fields = {**summary, **words, "data": ", ".join(summary["data"]), "topics": topics, "stacked": stacked}
    text = CARD.format(name=out, command=command.strip(), **fields)
    out.with_suffix(".md").write_text(text)
    return summary


def write_logit_bias(path: Path, bias: dict[int, float], meta: dict) -> None:
    """Save the biases with what they were fitted on (JSON: token ids as keys, like OpenAI's logit_bias)."""
    path.write_text(json.dumps({**meta, "logit_bias": {str(k): v for k, v in bias.items()}}, indent=1) + "\n")
