"""Selection: drop unfaithful and toxic candidates, then majority vote of the quality experts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from convoforge.critics.base import Candidate, Critic, Verdict


@dataclass
class Outcome:
    """The winner of one pair (or None) and why every other candidate lost."""

    winner: str | None
    reasons: dict[str, str] = field(default_factory=dict)
    votes: dict[str, int] = field(default_factory=dict)


def select(
    candidates: list[Candidate], verdicts: dict[str, dict[str, Verdict]], critics: list[Critic]
) -> dict[str, Outcome]:
    """Pick one winner per pair_id; invalid verdicts neither drop nor vote."""
    by_pair: dict[str, list[Candidate]] = {}
    for c in candidates:
        by_pair.setdefault(c.pair_id, []).append(c)
    judges = [c for c in critics if c.role == "quality"]
    outcomes = {}
    for pair_id, group in by_pair.items():
        reasons: dict[str, str] = {}
        alive = []
        for cand in group:
            if cand.parse_error:
                reasons[cand.id] = f"unparseable: {cand.parse_error}"
                continue
            if cand.hygiene:
                reasons[cand.id] = f"hygiene: {cand.hygiene}"
                continue
            failed = failed_filters(cand, verdicts, critics)
            if failed:
                reasons[cand.id] = "dropped by " + ", ".join(failed)
            else:
                alive.append(cand)
        votes: Counter[str] = Counter()
        for judge in judges:
            scored = [
                (v.score, c.id) for c in alive if (v := _verdict(verdicts, judge, c)).valid and v.score is not None
            ]
            if scored:
                best = max(s for s, _ in scored)
                votes[next(cid for s, cid in scored if s == best)] += 1  # ties: earliest candidate

        def mean_quality(cand: Candidate) -> float:
            scores = [v.score for j in judges if (v := _verdict(verdicts, j, cand)).valid and v.score is not None]
            return sum(scores) / len(scores) if scores else 0.0

        ranked = sorted(alive, key=lambda c: (-votes[c.id], -mean_quality(c)))
        winner = ranked[0].id if ranked else None
        for cand in ranked[1:]:
            reasons[cand.id] = f"lost the vote ({votes[cand.id]} vs {votes[winner]} votes)"
        outcomes[pair_id] = Outcome(winner, reasons, dict(votes))
    return outcomes


def _verdict(verdicts: dict[str, dict[str, Verdict]], critic: Critic, cand: Candidate) -> Verdict:
    return verdicts.get(critic.name, {}).get(cand.id) or Verdict.invalid(critic.name, "", "no verdict")


def failed_filters(cand: Candidate, verdicts: dict[str, dict[str, Verdict]], critics: list[Critic]) -> list[str]:
    """The filter critics that drop this candidate (an invalid or missing verdict drops nothing)."""
    return [f.name for f in critics if f.role == "filter" and _verdict(verdicts, f, cand).passed is False]
