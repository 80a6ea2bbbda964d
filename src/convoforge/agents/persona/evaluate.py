"""Measuring generated persona dialogues and the faithfulness expert (pair- and attribute-level AUC)."""

from __future__ import annotations

import json
import random

import numpy as np
from sklearn.metrics import roc_auc_score

from convoforge.critics.faithfulness import attribute_scores, faithfulness_score
from convoforge.critics.toxicity import lexicon_pattern
from convoforge.datasets.metrics import conversation_stats
from convoforge.llm.embeddings import Embedder


def _turns(row: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for m in row["messages"]:
        out.setdefault(m["speaker"], []).append(m["content"])
    return out


def faithfulness_scores(embedder: Embedder, rows: list[dict], unit: str = "sentence") -> list[float]:
    """The faithfulness expert's score of each conversation against its own profiles."""
    return [faithfulness_score(embedder, r["profiles"], _turns(r), unit) for r in rows]


def pair_auc(embedder: Embedder, rows: list[dict], own: list[float], unit: str = "sentence") -> float:
    """True profiles vs another conversation's profiles (a derangement), same conversations."""
    if len(rows) < 2:
        return float("nan")
    swapped = [
        faithfulness_score(embedder, rows[(i + 1) % len(rows)]["profiles"], _turns(r), unit) for i, r in enumerate(rows)
    ]
    return float(roc_auc_score([1] * len(own) + [0] * len(swapped), own + swapped))


def attribute_auc(embedder: Embedder, rows: list[dict], rng: random.Random, unit: str = "sentence") -> float:
    """A true attribute of a speaker vs a random attribute of another conversation's speaker."""
    labels: list[int] = []
    scores: list[float] = []
    for i, row in enumerate(rows):
        turns = _turns(row)
        for speaker, attrs in row["profiles"].items():
            if not attrs or not turns.get(speaker):
                continue
            other = rows[rng.choice([k for k in range(len(rows)) if k != i])]
            foreign = [a for p in other["profiles"].values() for a in p if a not in attrs]
            if not foreign:
                continue
            true_attr, fake_attr = rng.choice(attrs), rng.choice(foreign)
            pos, neg = attribute_scores(embedder, [true_attr, fake_attr], turns[speaker], unit)
            labels += [1, 0]
            scores += [float(pos), float(neg)]
    return float(roc_auc_score(labels, scores)) if len(set(labels)) == 2 else float("nan")


def toxicity_rate(rows: list[dict]) -> float:
    """Share of conversations with a lexicon hit."""
    pattern = lexicon_pattern()
    hits = sum(any(pattern.search(m["content"]) for m in r["messages"]) for r in rows)
    return hits / len(rows) if rows else 0.0


def evaluate(
    embedder: Embedder, rows: list[dict], with_aucs: bool, seed: int = 0, unit: str = "sentence"
) -> tuple[dict, list[float]]:
    """Counts, text statistics, toxicity rate, faithfulness (and its AUCs when asked)."""
    own = faithfulness_scores(embedder, rows, unit)
    report = {
        **conversation_stats([r["messages"] for r in rows]),
        "toxicity_rate": round(toxicity_rate(rows), 4),
        "faithfulness_mean": round(float(np.mean(own)), 4) if own else None,
    }
    if with_aucs:
        report["faithfulness_auc_pair"] = round(pair_auc(embedder, rows, own, unit), 4)
        report["faithfulness_auc_attribute"] = round(attribute_auc(embedder, rows, random.Random(seed), unit), 4)
    return report, own


def hygiene_rates(rows: list[dict]) -> dict:
    """Shares of conversations: degenerate, prompt leak, placeholder, unfinished, small talk; of turns: recited."""
    from convoforge.agents.persona.hygiene import conversation_flags

    flags = [conversation_flags(r["messages"], r["profiles"]) for r in rows]
    turns = sum(f["turns"] for f in flags)
    return {
        "degenerate_rate": round(sum(f["degenerate"] for f in flags) / len(flags), 4) if flags else None,
        "recitation_rate": round(sum(f["recited_turns"] for f in flags) / turns, 4) if turns else None,
        "prompt_leak_rate": round(sum(f["prompt_leak"] for f in flags) / len(flags), 4) if flags else None,
        "placeholder_rate": round(sum(f["placeholder"] for f in flags) / len(flags), 4) if flags else None,
        "unfinished_rate": round(sum(f["unfinished"] for f in flags) / len(flags), 4) if flags else None,
        "small_talk_rate": round(sum(f["small_talk"] for f in flags) / len(flags), 4) if flags else None,
    }


STATISTICS = ("words_mean", "words_sd", "questions", "exclamations", "distinct_1", "distinct_2", "recitation")


def conversation_features(embedder: Embedder, rows: list[dict]) -> np.ndarray:
    """Mean MiniLM vector of a conversation's turns plus STATISTICS (no turn counts: lengths are matched)."""
    from convoforge.agents.persona.hygiene import recitations
    from convoforge.datasets.metrics import distinct_n, tokens

    texts = [m["content"] for r in rows for m in r["messages"]]
    vectors = embedder.embed(texts) if texts else np.zeros((0, 1))
    out, at = [], 0
    for r in rows:
        utts = [m["content"] for m in r["messages"]]
        vec = vectors[at : at + len(utts)].mean(axis=0)
        at += len(utts)
        words = [len(tokens(u)) for u in utts]
        spoken = [(m["speaker"], m["content"]) for m in r["messages"]]
        stats = zip(  # one column per name of STATISTICS, in its order
            STATISTICS,
            (
                float(np.mean(words)),
                float(np.std(words)),
                sum("?" in u for u in utts) / len(utts),
                sum("!" in u for u in utts) / len(utts),
                distinct_n(utts, 1),
                distinct_n(utts, 2),
                recitations(spoken, r["profiles"]) / len(utts),
            ),
            strict=True,
        )
        out.append(np.concatenate([vec, [value for _, value in stats]]))
    return np.array(out)


def matched_reference(reference: list[dict], rows: list[dict], rng: random.Random) -> list[dict]:
    """Reference conversations cut to the per-user turn counts of randomly drawn generated ones (lengths matched)."""
    from convoforge.datasets.spc import first_turns

    counts = [max(1, min(sum(m["speaker"] == s for m in r["messages"]) for s in ("User 1", "User 2"))) for r in rows]
    out = []
    for ref in reference:
        turns = first_turns([(m["speaker"], m["content"]) for m in ref["messages"]], rng.choice(counts))
        out.append({**ref, "messages": [{"speaker": s, "content": t} for s, t in turns]})
    return out


def matched_features(
    embedder: Embedder, reference: list[dict], rows: list[dict], rng: random.Random
) -> tuple[np.ndarray, np.ndarray]:
    """`conversation_features` of the reference cut to the rows' lengths (`matched_reference`) and of the rows."""
    real = matched_reference(reference, rows, rng)
    return conversation_features(embedder, real), conversation_features(embedder, rows)


def clean_reference(reference: list[dict]) -> list[dict]:
    """The reference conversations that pass the hygiene generated ones are held to: the discriminator's real side.

    Half of SPC's held-out conversations (49%) carry its source generator's template text or slots ("Hi, I'm
    [user 1's name].") or loop; the pipeline rejects these in its own output, so a classifier shown them as "real"
    scores by artefacts the pipeline removes and counts a generator that leaks them as more real.
    """
    from convoforge.agents.persona.hygiene import clean_conversation

    return [r for r in reference if r["messages"] and clean_conversation(r["messages"], r["profiles"])]


def discriminator(embedder: Embedder, reference: list[dict], rows: list[dict], seed: int = 0) -> dict:
    """Real (length-matched) vs generated, folds by persona pair; 0.5: can't tell. Pass `clean_reference`'s rows."""
    from convoforge.datasets.discriminator import cv_accuracy

    usable = [r for r in rows if r["messages"]]
    if not usable or not reference:
        return {"accuracy": None, "per_class": 0, "reason": "no conversations"}
    groups = [str(r.get("pair_id") or f"row {i}") for i, r in enumerate(usable)]  # a pair's candidates: one group
    real_x, rows_x = matched_features(embedder, reference, usable, random.Random(seed))
    found = cv_accuracy(real_x, rows_x, seed=seed, groups=groups)
    # the same classifier on each half of the features: what is said (turn vectors) or how (STATISTICS)
    cut = len(STATISTICS)
    for key, cols in (("by_embedding", slice(None, -cut)), ("by_statistics", slice(-cut, None))):
        found[key] = cv_accuracy(real_x[:, cols], rows_x[:, cols], seed=seed, groups=groups)["accuracy"]
    return found


def matched_discriminator(
    embedder: Embedder, reference: list[dict], mine: list[dict], theirs: list[dict], draws: int = 5, seed: int = 0
) -> dict:
    """Both runs' discriminator at the same size (the smaller run's count), mean over `draws` seeded subsamples.

    A cross-validated classifier gets better with more rows, so a run that writes more conversations looks less
    real by its count alone; at equal size the two accuracies compare (and each run's two halves of it).
    """
    mine, theirs = ([r for r in rows if r["messages"]] for rows in (mine, theirs))
    reference = clean_reference(reference)  # once for every draw
    n = min(len(mine), len(theirs))

    def judged(rows: list[dict]) -> list[dict]:
        picks = (random.Random(seed + k).sample(rows, n) for k in range(draws))
        return [discriminator(embedder, reference, pick, seed + k) for k, pick in enumerate(picks)]

    found = {"per_class": n, "draws": draws}
    for suffix, rows in (("", mine), ("_other", theirs)):
        draws_found = judged(rows) if n else [{}]
        for key in ("accuracy", "by_embedding", "by_statistics"):  # the whole and its two halves (discriminator)
            vals = [d.get(key) for d in draws_found]
            found[key + suffix] = None if None in vals else round(float(np.mean(vals)), 4)
            if key == "accuracy":
                found["sd" + suffix] = None if None in vals else round(float(np.std(vals, ddof=1)), 4)
    if found["accuracy"] is not None and found["accuracy_other"] is not None:
        found["difference"] = round(found["accuracy"] - found["accuracy_other"], 4)
    return found


def quality_report(embedder: Embedder, rows: list[dict], reference: list[dict] | None, seed: int = 0) -> dict:
    """Critic-independent measures of accepted conversations, overall and per iteration, beside the reference's."""
    from convoforge.datasets.metrics import conversation_stats

    real = clean_reference(reference) if reference else []  # the discriminator's real side, once for every part

    def measures(part: list[dict]) -> dict:
        stats = conversation_stats([r["messages"] for r in part])
        keep = ("conversations", "turns_per_user", "distinct_1", "distinct_2")
        found = {k: stats[k] for k in keep} | hygiene_rates(part)
        if reference:
            judged = discriminator(embedder, real, part, seed)
            found["discriminator_accuracy"], found["discriminator_per_class"] = judged["accuracy"], judged["per_class"]
            for key in ("by_embedding", "by_statistics"):
                found[f"discriminator_{key}"] = judged.get(key)
        return found

    report: dict = {"generated": measures(rows) if rows else {"conversations": 0}}
    if reference:
        ref_stats = conversation_stats([r["messages"] for r in reference])
        report["reference"] = {k: ref_stats[k] for k in ("conversations", "turns_per_user", "distinct_1", "distinct_2")}
        report["reference"] |= hygiene_rates(reference)
        report["reference"]["discriminator_real"] = len(real)
    iterations = sorted({r.get("iteration", 0) for r in rows})
    report["per_iteration"] = [
        {"iteration": it, **measures([r for r in rows if r.get("iteration", 0) == it])} for it in iterations
    ]
    return report


def candidates_report(embedder: Embedder, rows: list[dict], reference: list[dict] | None, seed: int = 0) -> dict:
    """quality_report's measures of every candidate, overall, with its `per_iteration` inside."""
    every = quality_report(embedder, rows, reference, seed)
    return every["generated"] | {"per_iteration": every["per_iteration"]}


def iteration_trend(
    embedder: Embedder, reference: list[dict], accepted: list[dict], seed: int = 0, draws: int = 5
) -> dict:
    """The discriminator of a run's first and last iteration at the same count: whether iterations help.

    Pass the winners, or every candidate. The same classifier as `quality_report`'s `per_iteration`, over
    the first and the last iteration that has conversations, both at the smaller one's count (mean and sd of
    `draws` seeded subsamples, as `matched_discriminator`): at 11-18 winners an iteration the classifier's
    accuracy moves with the count alone, so an iteration that wins more would read less real by its size.
    """
    rows = [r for r in accepted if r["messages"]]
    its = sorted({r.get("iteration", 0) for r in rows})
    if len(its) < 2:
        return {"iterations": its, "reason": "fewer than two iterations have a conversation"}
    first, last = ([r for r in rows if r.get("iteration", 0) == it] for it in (its[0], its[-1]))
    matched = matched_discriminator(embedder, reference, last, first, draws, seed)
    found = {"iterations": [its[0], its[-1]], "conversations": [len(first), len(last)]}
    found |= {"per_class": matched["per_class"], "draws": draws, "first": matched["accuracy_other"]}
    found |= {"first_sd": matched["sd_other"], "last": matched["accuracy"], "last_sd": matched["sd"]}
    difference = matched.get("difference")  # last minus first: below 0, the last iteration reads more real
    return found | {"difference": difference, "last_below_first": None if difference is None else difference < 0}


def iteration_trends(
    embedder: Embedder, reference: list[dict], accepted: list[dict], candidates: list[dict], seed: int = 0
) -> dict:
    """`iteration_trend` of the winners and, when given, of every candidate; the winners by both `shared_trend`s."""
    found = {"winners": iteration_trend(embedder, reference, accepted, seed)}
    if candidates:
        found["every_candidate"] = iteration_trend(embedder, reference, candidates, seed)
    found["winners_shared"] = shared_trend(embedder, reference, accepted, candidates, seed)
    return found | {"winners_shared_words": shared_trend(embedder, reference, accepted, candidates, seed, "words")}


def persona_key(row: dict) -> str:
    """A conversation's persona pair as one string (its profiles), to group a pair's rows across iterations."""
    return json.dumps(row.get("profiles"), sort_keys=True)


JUDGES = {
    "features": "MiniLM turn vectors and statistics",  # `discriminator`'s features, what the issue's target reads
    "words": "word 1-2 gram TF-IDF",  # a second judge on other features: the words said, not their embedding
}


def conversation_text(row: dict) -> str:
    """A conversation's turns as one text, what the word judge reads."""
    return " ".join(m["content"] for m in row["messages"])


def realness_scores(
    embedder: Embedder,
    reference: list[dict],
    rows: list[dict],
    seed: int = 0,
    folds: int = 5,
    judge: str = "features",
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold log-odds of "generated" of every real (length-matched) and generated row, by one classifier.

    `judge` "features": the same features and model as `discriminator`; "words": word 1-2 grams
    (`words_discriminator`). Fitted on all rows (classes weighed alike) in folds grouped by persona (a pair's
    candidates, whatever their iteration, are never on both sides of a fold), so every row of a run gets a score
    of the same scale. Pass `clean_reference`'s rows and rows with turns.
    """
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict

    from convoforge.datasets.discriminator import linear_discriminator, words_discriminator

    if judge not in JUDGES:
        raise ValueError(f"unknown judge {judge!r}; one of {', '.join(JUDGES)}")
    n, rng = len(reference), random.Random(seed)  # matched_reference: one cut conversation a reference one
    if judge == "words":
        real = matched_reference(reference, rows, rng)
        x, model = np.array([conversation_text(r) for r in real + rows], dtype=object), words_discriminator
    else:
        x, model = np.vstack(matched_features(embedder, reference, rows, rng)), linear_discriminator
    y = np.array([0] * n + [1] * len(rows))
    personas = [persona_key(r) for r in rows]  # the persona pair, not its pair_id (one a pair and iteration)
    groups = [f"real {i}" for i in range(n)] + personas
    cv = StratifiedGroupKFold(n_splits=min(folds, len(set(personas))), shuffle=True, random_state=seed)
    scores = cross_val_predict(model(class_weight="balanced"), x, y, cv=cv, groups=groups, method="decision_function")
    return scores[:n], scores[n:]


def shared_trend(
    embedder: Embedder,
    reference: list[dict],
    accepted: list[dict],
    candidates: list[dict],
    seed: int = 0,
    judge: str = "features",
) -> dict:
    """Whether the last iteration's winners read more real than the first's, scored by one classifier of the run.

    `iteration_trend` trains a classifier per iteration on 8-18 winners a side, whose accuracy moves by .1 from
    one subsample to the next. Here one classifier learns real against every candidate of the run (about five
    times the winners; `realness_scores`) and scores each winner out of fold; per iteration come the winners'
    `accuracy` at its threshold (real rows right and winners right, halved), their `auc` against the real rows
    and their mean `score` (log-odds of generated). `difference` is the last minus the first iteration's
    accuracy (below 0: the last reads more real); `last_over_first` the chance that a last winner scores as more
    generated than a first one (0.5: no change; below: the last reads more real), with its Mann-Whitney p.
    `judge` picks `realness_scores`' classifier: a critic that learns the issue's features (`realism`) can move
    winners along them alone, so "words" reads the same winners on other features as a second judge.
    """
    from scipy.stats import mannwhitneyu

    def key(row: dict) -> object:
        return row.get("id") or id(row)  # a dataset row's id; rows built in memory: the row itself

    won = {key(r) for r in accepted}
    rows = [r for r in (candidates or accepted) if r["messages"]]
    have = {key(r) for r in rows}
    rows += [r for r in accepted if r["messages"] and key(r) not in have]  # every winner, if not a candidate
    real = clean_reference(reference)
    if len(real) < 10 or len(rows) < 10 or len({persona_key(r) for r in rows}) < 2:
        personas = len({persona_key(r) for r in rows})
        return {"reason": f"too few rows to fit on ({len(real)} real, {len(rows)} generated of {personas} personas)"}
    real_s, row_s = realness_scores(embedder, real, rows, seed, judge=judge)
    real_right = float(np.mean(real_s < 0))
    by_it: dict[int, list[float]] = {}
    for row, score in zip(rows, row_s, strict=True):
        if key(row) in won:
            by_it.setdefault(row.get("iteration", 0), []).append(float(score))
    per_it = [
        {
            "iteration": it,
            "winners": len(s),
            "accuracy": round((real_right + float(np.mean(np.array(s) > 0))) / 2, 4),
            "auc": round(float(roc_auc_score([0] * len(real_s) + [1] * len(s), [*real_s, *s])), 4),
            "score": round(float(np.mean(s)), 4),
        }
        for it, s in sorted(by_it.items())
    ]
    found = {
        "judge": JUDGES[judge],
        "real": len(real_s),
        "generated": len(rows),
        "real_accuracy": round(real_right, 4),
        "per_iteration": per_it,
    }
    found["all_accuracy"] = round((real_right + float(np.mean(row_s > 0))) / 2, 4)
    usable = [p for p in per_it if p["winners"] >= 3]
    if len(usable) < 2:
        return found | {"reason": "fewer than two iterations have 3 winners"}
    first, last = usable[0], usable[-1]
    a, b = by_it[first["iteration"]], by_it[last["iteration"]]
    found |= {
        "iterations": [first["iteration"], last["iteration"]],
        "difference": round(last["accuracy"] - first["accuracy"], 4),
        "auc_difference": round(last["auc"] - first["auc"], 4),
        "score_difference": round(float(np.mean(b) - np.mean(a)), 4),
        "last_over_first": round(float(mannwhitneyu(b, a).statistic) / (len(a) * len(b)), 4),
        "mannwhitney_p": _p(mannwhitneyu(b, a).pvalue),
        "scores": {"first": [round(v, 4) for v in a], "last": [round(v, 4) for v in b]},
    }
    return found | {"last_below_first": found["difference"] < 0}


def shared_trend_over_runs(trends: list[dict], permutations: int = 10000, seed: int = 0) -> dict:
    """`shared_trend` over runs: the winners of every run pooled, the iteration label permuted within each run.

    The statistic is the mean over runs of `last_over_first` (the Mann-Whitney U of the last iteration's winners
    against the first's, as a share: ranks, so a few extreme scores do not carry it); its p comes from shuffling
    which winners of a run are first and which last (two-sided, and one-sided, `permutation_p_below`, for "the
    last reads more real"). Also the mean `score_difference` and `over_runs` of the accuracy differences.
    """
    from scipy.stats import rankdata

    runs = [(np.array(t["scores"]["first"]), np.array(t["scores"]["last"])) for t in trends if "scores" in t]
    report = {"runs": len(runs), "winners": [int(sum(len(a) for a, _ in runs)), int(sum(len(b) for _, b in runs))]}
    if not runs:
        return report | {"reason": "no run has two iterations with 3 winners"}
    rng = np.random.default_rng(seed)
    observed, null = 0.0, np.zeros(permutations)
    for a, b in runs:  # U of the last winners from their ranks; each row of `picked` is one shuffle of the ranks
        ranks, least = rankdata(np.concatenate([a, b])), len(b) * (len(b) + 1) / 2
        observed += (ranks[len(a) :].sum() - least) / (len(a) * len(b))
        picked = rng.permuted(np.tile(ranks, (permutations, 1)), axis=1)
        null += (picked[:, len(a) :].sum(axis=1) - least) / (len(a) * len(b))
    observed, null = observed / len(runs), null / len(runs)
    report |= {
        "last_over_first": round(observed, 4),
        "permutation_p": _p((1 + np.sum(np.abs(null - 0.5) >= abs(observed - 0.5) - 1e-12)) / (permutations + 1)),
        "permutation_p_below": _p((1 + np.sum(null <= observed + 1e-12)) / (permutations + 1)),
        "score_difference": round(float(np.mean([b.mean() - a.mean() for a, b in runs])), 4),
        "accuracy": over_runs([t["difference"] for t in trends if "difference" in t]),
        "last_below_first": sum(bool(t.get("last_below_first")) for t in trends),
    }
    return report


def pair_outcomes(accepted: list[dict], rejected: list[dict]) -> dict[str, dict]:
    """Per persona pair: candidates, how many passed hygiene and the filters, and the winner's recitation share."""
    from convoforge.agents.persona.hygiene import recitations

    out: dict[str, dict] = {}
    for won, rows in ((True, accepted), (False, rejected)):
        for row in rows:
            slot = out.setdefault(row["pair_id"], {"candidates": 0, "passed": 0, "recitation": None})
            slot["candidates"] += 1
            slot["passed"] += won or row.get("reason", "").startswith("lost the vote")
    for row in accepted:
        turns = [(m["speaker"], m["content"]) for m in row["messages"]]
        out[row["pair_id"]]["recitation"] = recitations(turns, row["profiles"]) / len(turns) if turns else 0.0
    return out


def _p(value: float) -> float:
    """A p-value to three significant digits (small ones stay visible)."""
    return float(f"{float(value):.3g}")


def over_runs(differences: list[float], margin: float | None = None) -> dict:
    """Paired runs (one difference a random seed) as the unit: the mean, its 95% t-interval and t tests.

    One run's `sd` comes from subsamples of that run and understates the spread between runs; this is the
    figure that holds for a new run. With `margin` (say -0.10), how many runs reach it and the one-sided p of
    the mean lying beyond it (below a negative margin, above a positive one).
    """
    from scipy import stats

    d = np.array(differences, dtype=float)
    report: dict = {"runs": len(d), "differences": [round(float(x), 4) for x in d]}
    if not len(d):
        return report
    report["mean"] = round(float(d.mean()), 4)
    if len(d) < 2:
        return report | {"reason": "one run: no spread between runs to test with"}
    spread = float(d.std(ddof=1))
    low, high = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d)) if spread else (d[0], d[0])
    report |= {
        "sd": round(spread, 4),
        "interval_95": [round(float(low), 4), round(float(high), 4)],
        "t_test_p": _p(stats.ttest_1samp(d, 0.0).pvalue) if spread else None,  # no spread: no t statistic
    }
    if margin is not None:
        side = "less" if margin < 0 else "greater"
        report["margin"] = margin
        report["runs_reaching_margin"] = int(((d <= margin) if margin < 0 else (d >= margin)).sum())
        report["margin_p"] = _p(stats.ttest_1samp(d, margin, alternative=side).pvalue) if spread else None
    return report


def trend_over_runs(trends: list[dict]) -> dict:
    """Over the seeds: runs with a trend, how many read more real in the last iteration, the mean change."""
    below = [t["last_below_first"] for t in trends if t.get("last_below_first") is not None]
    changes = over_runs([t["difference"] for t in trends if t.get("difference") is not None])
    return {"runs": len(below), "last_below_first": sum(below)} | {k: v for k, v in changes.items() if k != "runs"}


def paired_comparison(mine: dict[str, dict], theirs: dict[str, dict]) -> dict:
    """The persona pair as the unit: acceptance share and the winner's recitation, this run against the other."""
    from scipy.stats import binomtest, wilcoxon

    common = sorted(set(mine) & set(theirs))
    share = {
        k: (mine[k]["passed"] / mine[k]["candidates"], theirs[k]["passed"] / theirs[k]["candidates"]) for k in common
    }
    diffs = [a - b for a, b in share.values()]
    better, worse = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    report = {
        "pairs": len(common),
        "acceptance": round(sum(a for a, _ in share.values()) / len(common), 4) if common else None,
        "acceptance_other": round(sum(b for _, b in share.values()) / len(common), 4) if common else None,
        "pairs_better": better,
        "pairs_worse": worse,
        "sign_test_p": _p(binomtest(better, better + worse).pvalue) if better + worse else None,
        "wilcoxon_p": _p(wilcoxon([d for d in diffs if d]).pvalue) if better + worse >= 6 else None,
    }
    both = [(mine[k]["recitation"], theirs[k]["recitation"]) for k in common]
    both = [(a, b) for a, b in both if a is not None and b is not None]
    report["pairs_both_accepted"] = len(both)
    if both:
        report["recitation"] = round(sum(a for a, _ in both) / len(both), 4)
        report["recitation_other"] = round(sum(b for _, b in both) / len(both), 4)
        moved = [a - b for a, b in both if a != b]
        report["recitation_wilcoxon_p"] = _p(wilcoxon(moved).pvalue) if len(moved) >= 6 else None
    return report
