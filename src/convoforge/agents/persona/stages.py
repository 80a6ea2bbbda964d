"""The pipeline's stages as plain functions: expansion, profiles, pairing, generation, selection records."""

from __future__ import annotations

import asyncio
import json
import random
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np
from pydantic import BaseModel

from convoforge.agents.persona import hygiene, prompts
from convoforge.agents.persona.context import PersonaContext
from convoforge.critics.base import Candidate, Critic, Turn, Verdict
from convoforge.critics.selection import select
from convoforge.datasets.spc import parse_transcript
from convoforge.errors import BackendError
from convoforge.llm import GenParams, astructured, draw_seed
from convoforge.llm.base import ChatModel
from convoforge.llm.embeddings import Embedder

SHORT = GenParams(temperature=0.7, max_tokens=48, top_k=40)
BACKEND_FAILED = "backend failed:"


def cluster(embedder: Embedder, texts: list[str], distance: float) -> list[int]:
    """Agglomerative clustering, average linkage on cosine distance, merge threshold `distance`."""
    if len(texts) < 2:
        return [0] * len(texts)
    from sklearn.cluster import AgglomerativeClustering

    model = AgglomerativeClustering(n_clusters=None, distance_threshold=distance, metric="cosine", linkage="average")
    return model.fit_predict(embedder.embed(texts)).tolist()


async def _texts(
    llm: ChatModel, asks: list[str], params: GenParams, log: list[dict] | None, rng: random.Random
) -> list[str]:
    """Every prompt's reply; one that failed for good (after the backend's retries) is "" and logged.

    Each request carries its own seed drawn from `rng`, so a run's `--random-seed` fixes what is sampled.
    """

    async def one(prompt: str, seed: int) -> str:
        try:
            return (await llm.achat(prompt, replace(params, seed=seed))).text
        except BackendError as exc:
            if log is not None:
                log.append({"request": prompt[:60], "reason": f"{BACKEND_FAILED} {exc}"})
            return ""

    seeds = [draw_seed(rng) for _ in asks]
    return list(await asyncio.gather(*[one(a, s) for a, s in zip(asks, seeds, strict=True)]))


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.strip().splitlines() if line.strip()), "")


async def induce_queries(
    llm: ChatModel,
    embedder: Embedder,
    attributes: list[str],
    ctx: PersonaContext,
    rng: random.Random,
    log: list[dict] | None = None,
) -> list[str]:
    """Per cluster of similar attributes, the most specific question they answer (rejections into `log`)."""
    labels = cluster(embedder, attributes, ctx.query_cluster_distance)
    groups: dict[int, list[str]] = {}
    for attr, label in zip(attributes, labels, strict=True):
        groups.setdefault(label, []).append(attr)
    multi = [g for g in groups.values() if len(g) >= 2]
    chosen = multi or sorted(groups.values(), key=len, reverse=True)
    samples = [rng.sample(g, min(3, len(g))) for g in chosen[:32]]
    asks = [prompts.QUERY_INDUCTION.format(statements="\n".join(s)) for s in samples]
    return _questions(await _texts(llm, asks, SHORT, log, rng), log)


def _questions(texts, log: list[dict] | None = None) -> list[str]:
    """Question lines of the replies; a question carrying the pipeline's own prompt text is dropped (logged)."""
    found = []
    for text in texts:
        for line in text.splitlines():
            line = re.sub(r"^\s*(\d+[.)]|[-*•])\s*", "", line).strip().strip('"')
            if not (line.endswith("?") and 3 <= len(line.split()) <= 25):
                continue
            if problem := hygiene.question_problem(line):
                if log is not None:
                    log.append({"query": line, "reason": problem})
                continue
            found.append(line)
    return list(dict.fromkeys(found))


async def bootstrap_queries(
    llm: ChatModel, queries: list[str], ctx: PersonaContext, rng: random.Random, log: list[dict] | None = None
) -> list[str]:
    """Grow the query set: show 5, ask for more like them; `query_steps` rounds (rejections into `log`)."""
    pool = list(queries) or ["What do you do for a living?", "What do you like to do for fun?"]
    for _ in range(ctx.query_steps):
        shown = rng.sample(pool, min(5, len(pool)))
        ask = prompts.QUERY_BOOTSTRAP.format(queries="\n".join(shown))
        replies = await _texts(llm, [ask], GenParams(max_tokens=96, top_k=40), log, rng)
        pool = list(dict.fromkeys(pool + _questions(replies, log)))
    return pool


def _is_new(vec: np.ndarray, kept: np.ndarray, threshold: float) -> bool:
    return kept.size == 0 or float((kept @ vec).max()) <= threshold


async def bootstrap_personas(
    llm: ChatModel,
    embedder: Embedder,
    attributes: list[str],
    queries: list[str],
    ctx: PersonaContext,
    rng: random.Random,
) -> tuple[list[str], list[dict]]:
    """New attributes from 5 random ones plus a query; near-duplicates (cosine > 0.9) are dropped."""
    kept_vecs = embedder.embed(attributes)
    new: list[str] = []
    log: list[dict] = []
    tries = 0
    while len(new) < ctx.persona_target and tries < 4 * ctx.persona_target:
        batch = min(8, 4 * ctx.persona_target - tries)
        tries += batch
        asks = [(rng.sample(attributes, min(5, len(attributes))), rng.choice(queries)) for _ in range(batch)]
        texts = [prompts.PERSONA_BOOTSTRAP.format(persona="\n".join(p), query=q) for p, q in asks]
        replies = await _texts(llm, texts, SHORT, log, rng)
        for reply, (_, query) in zip(replies, asks, strict=True):
            text = _first_line(reply).strip('"')
            if problem := hygiene.attribute_problem(text, query):
                log.append({"attribute": text, "reason": problem})
                continue
            vec = embedder.embed([text])[0]
            if not _is_new(vec, kept_vecs, ctx.duplicate_cosine):
                log.append(
                    {
                        "attribute": text,
                        "reason": f"near-duplicate (cosine > {ctx.duplicate_cosine})",
                    }
                )
                continue
            new.append(text)
            kept_vecs = np.vstack([kept_vecs, vec])
            if len(new) >= ctx.persona_target:
                break
    return new, log


class Contradicts(BaseModel):
    """The contradiction check's answer."""

    contradicts: bool


async def build_profiles(
    llm: ChatModel,
    embedder: Embedder,
    attributes: list[str],
    ctx: PersonaContext,
    rng: random.Random,
) -> tuple[list[list[str]], list[dict]]:
    """Add random attributes one at a time; reject redundant (cosine > 0.9) or contradicting ones."""
    vecs = dict(zip(attributes, embedder.embed(attributes), strict=True))
    profiles: list[list[str]] = [[] for _ in range(ctx.n_profiles)]
    log: list[dict] = []
    for _round in range(ctx.profile_size * 3):
        open_ = [i for i, p in enumerate(profiles) if len(p) < ctx.profile_size]
        if not open_:
            break
        offers = {i: rng.choice(attributes) for i in open_}
        checks = {}
        for i, attr in offers.items():
            if attr in profiles[i]:
                continue
            sims = [float(vecs[attr] @ vecs[a]) for a in profiles[i]]
            if sims and max(sims) > ctx.duplicate_cosine:
                log.append(
                    {
                        "profile": i,
                        "attribute": attr,
                        "reason": f"redundant (cosine {max(sims):.2f})",
                    }
                )
                continue
            checks[i] = attr
        verdicts = await asyncio.gather(*[_contradicts(llm, profiles[i], a, ctx) for i, a in checks.items()])
        for (i, attr), (bad, raw) in zip(checks.items(), verdicts, strict=True):
            if bad:
                log.append(
                    {
                        "profile": i,
                        "attribute": attr,
                        "reason": f"contradicts the profile ({raw[:80]!r})",
                    }
                )
            else:
                profiles[i].append(attr)
    return [p for p in profiles if p], log


async def _contradicts(llm: ChatModel, profile: list[str], attr: str, ctx: PersonaContext) -> tuple[bool, str]:
    if not ctx.check_contradictions or not profile:
        return False, ""
    prompt = prompts.CONTRADICTION.format(profile="\n".join(profile), statement=attr)
    result = await astructured(llm, prompt, Contradicts, GenParams(temperature=0.0, max_tokens=24), retries=0)
    return (bool(result.value.contradicts) if result.ok else False), result.raw


def pair_profiles(embedder: Embedder, profiles: list[list[str]], ctx: PersonaContext) -> tuple[list[list[int]], dict]:
    """Similarity = clusters two profiles share; pair those above the threshold, best first."""
    attrs = list(dict.fromkeys(a for p in profiles for a in p))
    label = dict(zip(attrs, cluster(embedder, attrs, ctx.pair_cluster_distance), strict=True))
    sets = [{label[a] for a in p} for p in profiles]
    scored = sorted(
        ((len(sets[i] & sets[j]), i, j) for i in range(len(profiles)) for j in range(i + 1, len(profiles))),
        key=lambda t: -t[0],
    )
    above = [[i, j] for s, i, j in scored if s > ctx.pair_threshold]
    below = [[i, j] for s, i, j in scored if s <= ctx.pair_threshold]
    needed = max(ctx.pairs - len(above), 0)
    info = {"above_threshold": len(above), "filled_below_threshold": min(needed, len(below))}
    return above + below[:needed], info


def pair_text(profiles: dict[str, list[str]]) -> str:
    """Both speakers' persona sentences as one text, what `nearest_examples` compares."""
    return " ".join(profiles["User 1"] + profiles["User 2"])


def draw_examples(pool: list[dict], n_seeds: int, ctx: PersonaContext, rng: random.Random) -> list[dict]:
    """`ctx.few_shot` pool examples at random; with `winner_share`, each from earlier winners with that chance."""
    k = min(ctx.few_shot, len(pool))
    seeds, winners = pool[:n_seeds], pool[n_seeds:]
    if ctx.winner_share is None or not winners:
        return rng.sample(pool, k)
    drawn = sum(rng.random() < ctx.winner_share for _ in range(k))
    n_won = min(len(winners), max(drawn, k - len(seeds)))  # one side short: the other fills the k
    examples = rng.sample(winners, n_won) + rng.sample(seeds, k - n_won)
    rng.shuffle(examples)
    return examples


def nearest_examples(
    embedder: Embedder,
    pool: list[dict],
    vectors: np.ndarray,
    profiles: dict[str, list[str]],
    ctx: PersonaContext,
    rng: random.Random,
) -> list[dict]:
    """`ctx.few_shot` examples drawn from the `few_shot_nearest` (at least `few_shot`) nearest pool conversations."""
    query = embedder.embed([pair_text(profiles)])[0]
    nearest = np.argsort(-(np.asarray(vectors) @ query), kind="stable")[: max(ctx.few_shot_nearest, ctx.few_shot)]
    return [pool[int(i)] for i in rng.sample(list(nearest), min(ctx.few_shot, len(nearest)))]


@dataclass
class GenerationJob:
    """One pair's generation request inside an iteration."""

    pair_id: str
    iteration: int
    profiles: dict[str, list[str]]
    examples: list[dict] = field(default_factory=list)


def render_example(example: dict) -> str:
    """A few-shot example in the generator's format."""
    conversation = "\n".join(f"{s}: {t}" for s, t in example["turns"])
    return prompts.EXAMPLE.format(
        p1=" ".join(example["profiles"]["User 1"]),
        p2=" ".join(example["profiles"]["User 2"]),
        conversation=conversation,
    )


def generator_messages(job: GenerationJob, ctx: PersonaContext) -> list[dict]:
    """System + one user message holding the few-shot examples and the task."""
    task = prompts.GENERATOR_TASK.format(
        examples="\n\n".join(render_example(e) for e in job.examples),
        p1=" ".join(job.profiles["User 1"]),
        p2=" ".join(job.profiles["User 2"]),
        min_turns_minus_one=ctx.min_turns - 1,
        max_turns_plus_one=ctx.max_turns + 1,
    )
    return [
        {"role": "system", "content": prompts.GENERATOR_SYSTEM},
        {"role": "user", "content": task},
    ]


def parse_candidate(
    raw: str, job: GenerationJob, index: int, ctx: PersonaContext, prompt: list[dict] | None = None
) -> Candidate:
    """Parse a generated conversation; cut past max_turns per user and before a loop that follows min_turns.

    A last turn the token limit stopped mid-sentence is cut back to its last finished sentence (or dropped).
    Too short is a parse error; a conversation that breaks a hygiene rule keeps its turns and says which. The
    prompt it answered is kept, so its record trains the generator in the prompt it was written in.
    """
    turns: list[Turn] = []
    counts = {"User 1": 0, "User 2": 0}
    written = parse_transcript(raw)
    finished = hygiene.finish_last_turn(written)
    for speaker, text in finished:
        if counts[speaker] >= ctx.max_turns:
            break
        counts[speaker] += 1
        turns.append(Turn(speaker=speaker, content=text))
    error = problems = None
    if not turns:
        error = "no 'User 1:'/'User 2:' lines"
    elif min(counts.values()) < ctx.min_turns:
        error = f"too short: {counts['User 1']}/{counts['User 2']} turns, need {ctx.min_turns} per user"
        if len(finished) < len(written):
            error += " (the last, stopped mid-sentence, was dropped)"
    else:
        limits = hygiene.Limits(recitation_cap=ctx.recitation_cap)
        spoken = [(t.speaker, t.content) for t in turns]
        # a small model that loops once the conversation is done has not stopped: keep what came before
        keep = hygiene.trim_degenerate_tail(spoken, ctx.min_turns, limits)
        turns, spoken = turns[:keep], spoken[:keep]
        problems = "; ".join(hygiene.conversation_problems(spoken, job.profiles, limits))
    return Candidate(
        id=f"{job.pair_id}-c{index}",
        pair_id=job.pair_id,
        iteration=job.iteration,
        profiles=job.profiles,
        turns=turns,
        raw=raw,
        parse_error=error,
        hygiene=problems or None,
        prompt=prompt or [],
    )


def failed_candidate(job: GenerationJob, index: int, error: str) -> Candidate:
    """A candidate whose generation request failed for good: kept as a rejection with the backend's error."""
    return Candidate(
        id=f"{job.pair_id}-c{index}",
        pair_id=job.pair_id,
        iteration=job.iteration,
        profiles=job.profiles,
        parse_error=f"{BACKEND_FAILED} {error}",
    )


def sort_candidates(
    cands: list[Candidate], verdicts: dict[str, dict[str, Verdict]], critics: list[Critic]
) -> tuple[list[dict], list[dict]]:
    """Each pair's winner as an accepted record; every other candidate rejected, with the reason it lost."""
    outcomes = select(cands, verdicts, critics)
    accepted, rejected = [], []
    for cand in cands:
        outcome = outcomes[cand.pair_id]
        record = make_record(cand, verdicts, critics, outcome.votes.get(cand.id, 0))
        if cand.id == outcome.winner:
            accepted.append(record)
        else:
            rejected.append({**record, "reason": outcome.reasons.get(cand.id, "")})
    return accepted, rejected


def make_record(cand: Candidate, verdicts: dict[str, dict[str, Verdict]], critics: list[Critic], votes: int) -> dict:
    """One dataset row; every critic appears, `not judged` where the candidate was unparseable."""
    rows = []
    for critic in critics:
        v = verdicts.get(critic.name, {}).get(cand.id) or Verdict.invalid(critic.name, "", "not judged")
        rows.append(v.model_dump())
    return {
        "id": cand.id,
        "pair_id": cand.pair_id,
        "iteration": cand.iteration,
        "profiles": cand.profiles,
        "messages": cand.messages(),
        "verdicts": rows,
        "votes": votes,
        "raw": cand.raw,
        "reason": "",
        "prompt": json.dumps(cand.prompt) if cand.prompt else "",
    }


def reason_key(reason: str) -> str:
    """A rejection reason without its details: `unparseable`, `dropped by faithfulness`, `hygiene: loop`, ..."""
    head = reason.split(" (")[0]
    if head.startswith(f"unparseable: {BACKEND_FAILED}"):
        return "backend failed"
    return head.split(";")[0] if head.startswith("hygiene:") else head.split(":")[0]


def iteration_stats(
    it: int,
    cands: list[Candidate],
    accepted: list[dict],
    rejected: list[dict],
    verdicts: dict[str, dict[str, Verdict]],
    critics: list[Critic],
    pool_size: int,
    learned: dict | None = None,
) -> dict:
    """One iteration's counts, rejection reasons and mean critic scores (the card's per-iteration row)."""
    reasons = Counter(reason_key(r["reason"]) for r in rejected)
    means = {}
    for critic in critics:
        scores = [v.score for v in verdicts.get(critic.name, {}).values() if v.valid and v.score is not None]
        invalid = sum(not v.valid for v in verdicts.get(critic.name, {}).values())
        means[critic.name] = {
            "mean": round(statistics.fmean(scores), 4) if scores else None,
            "invalid": invalid,
        }
    return {
        "iteration": it,
        "candidates": len(cands),
        "accepted": len(accepted),
        "rejected": len(rejected),
        "rejection_reasons": dict(reasons),
        "critics": means,
        "few_shot_pool": pool_size,
        **({"learned": learned} if learned else {}),
    }


def was_judged(record: dict) -> bool:
    """Whether an accepted or rejected record reached the critics (parsed and clean)."""
    return bool(record["messages"]) and not record["reason"].startswith(("unparseable", "hygiene:"))
