"""RL (RLOO + LoRA reward model), RLPF profile tuning, retriever tuning, resumable runs and the eval commands."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from convoforge.datasets.export import export, profile_rows, retrieval_rows
from convoforge.datasets.metrics import fisher_exact, recited
from convoforge.datasets.records import read_dataset
from convoforge.errors import ConvoforgeError
from tests.test_persona_cli import cf, scripted_personas

SAMPLE = Path(__file__).parents[1] / "src/convoforge/agents/recommender/data/sample_movies.jsonl"
TINY_RL = ["--steps", "2", "--batch-size", "1", "--generations", "2", "--new-tokens", "12", "--lr", "1e-3"]


def movielens(folder: Path, users: int = 6) -> Path:
    """A small MovieLens-shaped folder: ten movies; users rate comedies first and like three horror films later."""
    folder.mkdir(parents=True, exist_ok=True)
    movies = [(i, f"Scary Film {i} (200{i})", "Horror|Thriller") for i in range(5)]
    movies += [(i, f"Funny Film {i} (199{i})", "Comedy") for i in range(5, 10)]
    with open(folder / "movies.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["movieId", "title", "genres"])
        w.writerows(movies)
    with open(folder / "ratings.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["userId", "movieId", "rating", "timestamp"])
        for u in range(1, users + 1):
            for t, m in enumerate([5, 6, 7, 8, 9, 5, 6, 7, 8, 9, 5, 6, 0, 1, 2]):
                w.writerow([u, m, 4.5 if m < 5 else 3.0, 1000 * u + t])
    return folder / "ratings.csv"


def test_profile_rows_hold_out_the_later_liked_items(tmp_path):
    ratings = movielens(tmp_path / "ml")
    with open(ratings, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["userId", "movieId", "rating", "timestamp"])
        w.writerows([[1, m, 2.0, t] for t, m in enumerate([5, 6, 7, 8])] + [[1, m, 5.0, 10 + m] for m in range(4)])
        w.writerows([[2, 5, 4.0, 1]])  # no later likes: skipped
    rows = profile_rows(ratings, future=0.5, min_liked=3)
    assert [r["id"] for r in rows] == ["user-1"]
    row = rows[0]
    assert row["history"] == ["5", "6", "7", "8"] and sorted(row["held_out"]) == ["0", "1", "2", "3"]
    assert "Funny Film 5" in row["prompt"][0]["content"] and "Scary" not in row["prompt"][0]["content"]
    with pytest.raises(ConvoforgeError, match="not a MovieLens"):
        profile_rows(tmp_path / "missing.csv")
    with pytest.raises(ConvoforgeError, match=r"no profile rows \(no user has 3 or more later liked"):
        export(ratings, "profile", tmp_path / "empty")  # default split: user 1 has one later like
    assert not (tmp_path / "empty").exists()


def test_retrieval_rows_grow_the_context_turn_by_turn():
    session = {
        "id": "s",
        "target_names": ["Jaws (1975)"],
        "target_texts": ["Jaws (1975). genre: thriller"],
        "messages": [
            {"role": "user", "content": "A shark film?", "intent": "ask_for_recommendations"},
            {"role": "assistant", "content": "Try Up.", "intent": ""},
            {"role": "user", "content": "Scarier, by Spielberg.", "intent": "give_feedback"},
            {"role": "user", "content": "Great, thanks!", "intent": "accept"},
        ],
    }
    rows = retrieval_rows([session])
    assert [r["anchor"] for r in rows] == ["A shark film?", "A shark film? Scarier, by Spielberg."]
    assert {r["positive"] for r in rows} == {"Jaws (1975). genre: thriller"}


def test_profile_reward_prefers_summaries_that_find_the_held_out_items(tmp_path):
    from convoforge.training.profile import ProfileReward

    ratings = movielens(tmp_path / "ml")
    reward = ProfileReward(ratings.parent / "movies.csv", k=3, max_words=8)
    history, held = [["5", "6"]], [["0", "1", "2"]]
    scary, funny = (
        reward.recall(["scary horror thriller films"], history, held),
        reward.recall(["comedy"], history, held),
    )
    assert scary[0] > funny[0]
    long = "horror " * 16
    assert reward(None, [long], history, held)[0] < reward(None, ["horror thriller"], history, held)[0]
    assert reward(None, [[{"role": "assistant", "content": ""}]], history, held) == [-1.0]


@pytest.fixture(scope="module")
def pairs_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rl")
    scripted_personas(root / "personas", iterations=1, pairs=4)
    made = cf("export", "--data", str(root / "personas"), "--format", "pairs", "--out", str(root / "pairs"))
    assert made.returncode == 0, made.stderr[-1500:]
    return root / "pairs"


@pytest.fixture(scope="module")
def reward_model(pairs_data) -> Path:
    out = pairs_data.parent / "reward"
    made = cf("train", "reward", "--data", str(pairs_data), "--out", str(out), "--steps", "2")
    assert made.returncode == 0, made.stderr[-2000:]
    return out


@pytest.mark.slow
def test_rl_with_the_lora_reward_model(pairs_data, reward_model, tmp_path):
    out = tmp_path / "rl"
    missing = cf("train", "rl", "--data", str(pairs_data), "--out", str(out), "--steps", "1")
    assert missing.returncode == 2 and "--reward-model" in missing.stderr
    made = cf(
        "train", "rl", "--data", str(pairs_data), "--out", str(out), "--reward-model", str(reward_model), *TINY_RL
    )
    assert made.returncode == 0, made.stderr[-2500:]
    assert "step 2/2" in made.stderr  # progress is shown
    summary = json.loads((out / "convoforge_training.json").read_text())
    assert summary["kind"] == "rl" and summary["steps"] == 2 and len(summary["rewards"]) == 2
    assert summary["kl"] == 0.05 and "RLOOTrainer" in (out / "README.md").read_text()
    lora_b = [v for k, v in load_file(str(out / "adapter_model.safetensors")).items() if "lora_B" in k]
    assert any(float(v.abs().sum()) > 0 for v in lora_b)
    report = cf(
        "eval", "policy", "--data", str(pairs_data), "--adapter", str(out), "--reward-model", str(reward_model),
        "--critic", "toxicity", "--pairs", "1", "--samples", "1", "--min-turns", "1",
    )  # fmt: skip
    assert report.returncode == 0, report.stderr[-2000:]
    figures = json.loads(report.stdout)
    assert set(figures) >= {"base", "rl"} and figures["rl"]["candidates"] == 1
    assert 0 <= figures["base"]["acceptance"] <= 1 and isinstance(figures["rl"]["mean_reward"], float)
    assert set(figures["rl"]["vs_base_p"]) == {"parse_rate", "acceptance"} and "vs_base_p" not in figures["base"]
    assert all(0 <= p <= 1 for p in figures["rl"]["vs_base_p"].values())
    assert figures["base"]["win_share"] is None  # no quality expert judged: no vote to share
    for name in ("base", "rl"):  # a share of turns, or None when that policy's one sample did not parse
        assert figures[name]["recitation"] is None or 0 <= figures[name]["recitation"] <= 1
    assert len(summary["kls"]) == 2 and all(math.isfinite(k) for k in summary["kls"])  # a sampled estimate: may dip < 0
    assert len(figures["pair_ids"]) == 1 and figures["rl"]["accepted_per_pair"] in ([0], [1])


def test_recitation_counts_turns_that_copy_a_persona_sentence_word_for_word():
    persona = ["I have two dogs.", "I like to ski.", "Blue."]
    turns = [
        "Hi! I have two dogs, do you?",  # copies the first sentence (punctuation and case aside)
        "I have two cats.",  # talks about pets without copying
        "I LIKE TO SKI",  # copies the second
        "I'd like to ski more often.",  # "like to ski" alone is not the sentence
        "Blue is my colour.",  # sentences under three words never count
    ]
    assert recited(turns, persona) == 2
    assert recited([], persona) == 0 and recited(turns, []) == 0


def test_fisher_exact_matches_known_tables():
    assert fisher_exact(3, 4, 1, 4) == 0.4857  # Fisher's tea tasting: 3 of 4 against 1 of 4
    assert fisher_exact(16, 51, 6, 51) == 0.0288
    assert fisher_exact(0, 10, 0, 10) == 1.0 and fisher_exact(5, 5, 0, 5) == 0.0079


@pytest.mark.slow
def test_reward_accuracy_on_held_out_pairs(pairs_data, reward_model):
    report = cf("eval", "reward", "--data", str(pairs_data), "--reward-model", str(reward_model))
    if read_dataset(pairs_data)["test"].num_rows == 0:
        assert report.returncode == 2 and "empty test split" in report.stderr
        return
    assert report.returncode == 0, report.stderr[-2000:]
    figures = json.loads(report.stdout)
    assert 0 <= figures["accuracy"] <= 1 and figures["pairs"] > 0


@pytest.mark.slow
def test_profile_rlpf_run_and_eval(tmp_path):
    ratings = movielens(tmp_path / "ml", users=12)
    data = tmp_path / "profile"
    made = cf("export", "--data", str(ratings), "--format", "profile", "--out", str(data))
    assert made.returncode == 0, made.stderr[-1500:]
    card = (data / "README.md").read_text()
    assert "- profile: (MovieLens history" in card and "- pairs:" not in card and '"format": "profile"' in card
    out = tmp_path / "model"
    made = cf("train", "profile", "--data", str(data), "--out", str(out), *TINY_RL)
    assert made.returncode == 0, made.stderr[-2500:]
    summary = json.loads((out / "convoforge_training.json").read_text())
    assert summary["kind"] == "profile" and len(summary["rewards"]) == 2
    report = cf("eval", "profile", "--data", str(data), "--adapter", str(out), "--limit", "2")
    if read_dataset(data)["test"].num_rows == 0:
        assert report.returncode == 2
        return
    assert report.returncode == 0, report.stderr[-2000:]
    figures = json.loads(report.stdout)
    assert set(figures["before"]) >= {"recall@50", "mean_words"} and figures["after"]["mean_words"] > 0


@pytest.mark.slow
def test_retriever_tuning_on_simulated_sessions(tmp_path):
    sessions, data, out = tmp_path / "sessions", tmp_path / "retrieval", tmp_path / "retriever"
    made = cf(
        "simulate", "--catalog", str(SAMPLE), "--n", "12", "--simulator", "template", "--out", str(sessions)
    )  # fmt: skip
    assert made.returncode == 0, made.stderr[-1500:]
    assert cf("export", "--data", str(sessions), "--format", "retrieval", "--out", str(data)).returncode == 0
    made = cf("train", "retriever", "--data", str(data), "--out", str(out), "--steps", "3", "--batch-size", "4")
    assert made.returncode == 0, made.stderr[-2000:]
    assert json.loads(made.stdout.strip().splitlines()[-1])["steps"] == 3 and (out / "config.json").is_file()
    turns = Path(__file__).parent / "fixtures/turns.jsonl"
    args = ["eval", "crs", "--turns", str(turns), "--catalog", str(SAMPLE), "--k", "1,3"]
    report = cf(*args, "--embedder", str(out), "--versus", "base")
    assert report.returncode == 0, report.stderr[-2000:]
    figures, base = json.loads(report.stdout), json.loads(cf(*args).stdout)
    assert figures["embedder"] == str(out) and figures["versus"]["embedder"] == "all-MiniLM-L6-v2"
    assert figures["versus"]["recall@3"] == base["recall@3"] and set(figures["paired"]) == {"recall@1", "recall@3"}
    bad = cf("eval", "crs", "--turns", str(turns), "--catalog", str(SAMPLE), "--embedder", str(tmp_path))
    assert bad.returncode == 2 and "not a sentence-transformers folder" in bad.stderr
    bad = cf(*args, "--versus", str(tmp_path))
    assert bad.returncode == 2 and "not a sentence-transformers folder" in bad.stderr


@pytest.mark.slow
def test_sft_resumes_from_its_checkpoint_and_eval_reports_before_after(tmp_path):
    from transformers import TrainerCallback

    from convoforge.training.lora import LoraSettings, train

    root = tmp_path
    scripted_personas(root / "personas", iterations=1, pairs=3)
    assert cf("export", "--data", str(root / "personas"), "--format", "sft", "--out", str(root / "sft")).returncode == 0

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise KeyboardInterrupt

    settings = LoraSettings(steps=4, max_length=256, lr=1e-3)
    with pytest.raises(KeyboardInterrupt):
        train("sft", root / "sft", root / "model", settings, callbacks=[Crash()])
    assert (root / ".model.checkpoints" / "checkpoint-2").is_dir() and not (root / "model").exists()

    class Count(TrainerCallback):
        steps = 0

        def on_step_end(self, args, state, control, **kwargs):
            Count.steps += 1

    summary = train("sft", root / "sft", root / "model", settings, resume=True, callbacks=[Count()])
    assert summary["steps"] == 4 and Count.steps == 2  # steps 3 and 4 only: 1-2 came from the checkpoint
    assert len(summary["losses"]) == 4  # the checkpoint's log history comes back with it
    report = cf("eval", "sft", "--data", str(root / "sft"), "--adapter", str(root / "model"))
    if read_dataset(root / "sft")["test"].num_rows == 0:
        assert report.returncode == 2
        return
    assert report.returncode == 0, report.stderr[-2000:]
    figures = json.loads(report.stdout)
    assert figures["before"]["tokens"] == figures["after"]["tokens"] > 0
    assert figures["after"]["loss"] != figures["before"]["loss"]


def test_training_template_renders_like_smollm2_and_masks_only_the_assistant():
    from convoforge.llm.local import resolve_weights
    from convoforge.training.lora import TRAIN_TEMPLATE, load_tokenizer

    tokenizer = load_tokenizer(resolve_weights("smollm2-135m"))
    assert tokenizer.chat_template == TRAIN_TEMPLATE
    messages = [
        {"role": "system", "content": "You are User 1."},
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello friend"},
        {"role": "user", "content": "How are you"},
        {"role": "assistant", "content": "Fine"},
    ]
    enc = tokenizer.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True, tokenize=True)
    kept = tokenizer.decode([t for t, m in zip(enc["input_ids"], enc["assistant_masks"], strict=True) if m])
    assert kept == "Hello friend<|im_end|>Fine<|im_end|>"


@pytest.mark.slow
def test_query_only_tuning_keeps_item_vectors_and_moves_queries(tmp_path):
    from convoforge.llm.embeddings import Embedder
    from convoforge.training.embedder import tune_embedder

    genres = ("horror", "comedy")
    pairs = [(f"a dark {g} film for tonight, {i}", f"{g} movie {i}: a plot") for g in genres for i in range(8)]
    summary = tune_embedder(pairs, tmp_path / "q", batch_size=4, max_steps=4, lr=1e-3, query_only=True)
    assert summary["steps"] == 4 and summary["towers"] == "query tuned, items frozen"
    base, tuned = Embedder(cache=False), Embedder(str(tmp_path / "q"), cache=False)
    items, queries = [p for _, p in pairs[:4]], [a for a, _ in pairs[:4]]
    assert np.allclose(tuned.embed(items), base.embed(items), atol=1e-5)  # the item tower is the frozen base
    assert not np.allclose(tuned.embed_query(queries), base.embed_query(queries), atol=1e-3)
    assert np.allclose(base.embed_query(queries), base.embed(queries), atol=1e-6)  # one tower: same vectors


def realism_pairs(folder: Path, n: int = 24) -> Path:
    """A real-vs-own pairs export whose own side is told apart by its style: the answer is known."""
    from convoforge.datasets.export import pair_splits
    from convoforge.datasets.records import write_dataset
    from tests.test_critics_eval import fixture_rows

    rows = []
    for i, real in enumerate(fixture_rows(n)):
        own = [
            f"GREETINGS, UNIT {i}. THE ORBITAL STATION REPORTS NOMINAL STATUS",
            f"ACKNOWLEDGED. REACTOR {i} OUTPUT STABLE AT NINETY PERCENT",
            "REQUEST TELEMETRY FROM THE SOUTHERN ARRAY BEFORE THE NEXT CYCLE",
            f"TELEMETRY FOLLOWS. SECTOR {i + 7} SHOWS MINOR DRIFT IN ALIGNMENT",
            "CORRECT THE DRIFT AND LOG THE ADJUSTMENT IN THE MAINTENANCE LEDGER",
            f"ADJUSTMENT LOGGED AS ENTRY {i * 3}. ENDING TRANSMISSION NOW",
        ]
        text = lambda turns: "\n".join(f"User {1 + k % 2}: {t}" for k, t in enumerate(turns))  # noqa: E731
        rows.append(
            {
                "id": f"p{i}-s0",
                "pair_id": f"p{i}",
                "profiles": real["profiles"],
                "prompt": [{"role": "user", "content": f"Write a conversation {i}."}],
                "chosen": [{"role": "assistant", "content": text([t for _, t in real["turns"]])}],
                "rejected": [{"role": "assistant", "content": text(own)}],
            }
        )
    write_dataset(pair_splits(rows), "# realism pairs\n", folder)
    return folder


def test_realism_reward_reads_real_conversations_as_real_and_floors_unusable_ones(tmp_path):
    from convoforge.training.realism import RealismReward
    from tests.test_critics_eval import fixture_rows

    data = realism_pairs(tmp_path / "pairs")
    reward = RealismReward(data)
    told = reward.describe()
    assert told["reward"] == "realism" and told["real"] == told["own"] >= 12  # the train split's pairs
    assert told["discriminator"]["accuracy"] >= 0.9 and told["discriminator"]["grouped"]
    fresh = fixture_rows(30)[24:]  # conversations it was not fitted on
    real = ["\n".join(f"{s}: {t}" for s, t in r["turns"]) for r in fresh]
    own = [
        "User 1: STATUS REPORT FOR THE EASTERN ARRAY IS READY\nUser 2: TRANSMIT IT ON CHANNEL NINE\n"
        f"User 1: TRANSMITTING NOW. POWER AT {k} PERCENT\nUser 2: RECEIVED. CHECK THE COOLANT LINES\n"
        "User 1: COOLANT LINES NOMINAL AFTER INSPECTION\nUser 2: GOOD. CLOSE THE CHANNEL"
        for k in range(len(fresh))
    ]
    looped = "User 1: Hi there.\nUser 2: Hello.\n" * 4  # a loop: a hygiene failure
    short = "User 1: Hi there."  # too short to parse as a conversation
    profiles = [r["profiles"] for r in fresh]
    real_scores, own_scores = reward.scores(real, profiles), reward.scores(own, profiles)
    assert min(real_scores) > 0 > max(own_scores)  # log-odds of real
    assert reward.scores([looped, short], profiles[:2]) == [reward.floor, reward.floor]
    assert reward.floor < min(own_scores)
    completions = [[{"role": "assistant", "content": t}] for t in (real[0], own[0])]
    called = reward(prompts=[[], []], completions=completions, profiles=profiles[:2])
    assert called == pytest.approx([real_scores[0], own_scores[0]])  # batched embeddings: float noise
    with pytest.raises(ConvoforgeError, match="real-vs-own pairs export"):
        RealismReward(export_without_pairs(tmp_path))


def export_without_pairs(tmp_path: Path) -> Path:
    """A dataset folder with a prompt but no real or own conversations."""
    from datasets import Dataset, DatasetDict

    from convoforge.datasets.records import write_dataset

    rows = Dataset.from_list([{"prompt": [{"role": "user", "content": "hi"}]}])
    write_dataset(DatasetDict({"train": rows, "test": rows}), "# no pairs\n", tmp_path / "prompts")
    return tmp_path / "prompts"


@pytest.mark.slow
def test_rl_with_the_realism_reward(tmp_path):
    data = realism_pairs(tmp_path / "pairs")
    out = tmp_path / "rl"
    wrong = cf("train", "sft", "--data", str(data), "--out", str(out), "--realism")
    assert wrong.returncode == 2 and "realism reward is for rl" in wrong.stderr and not out.exists()
    made = cf("train", "rl", "--data", str(data), "--out", str(out), "--realism", *TINY_RL)
    assert made.returncode == 0, made.stderr[-2500:]
    summary = json.loads((out / "convoforge_training.json").read_text())
    told = summary["realism_reward"]
    assert summary["kind"] == "rl" and summary["reward_model"] is None and told["discriminator"]["accuracy"] >= 0.9
    # 12 new tokens cannot hold three turns a user: every sample is unusable and scores the floor
    assert summary["rewards"] == [told["floor"]] * 2
    assert f"cross-validated accuracy {told['discriminator']['accuracy']}" in (out / "README.md").read_text()


def test_training_arguments_use_names_this_transformers_reads(tmp_path):
    """Checkpointing is off under its current name: building TRL's config warns of nothing deprecated."""
    import warnings

    import trl

    from convoforge.training.lora import LoraSettings, common_args

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = trl.SFTConfig(**common_args(LoraSettings(), tmp_path))
    assert not [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
    assert config.gradient_checkpointing is False
