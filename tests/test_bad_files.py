"""Every reader of a user's file: text that is not UTF-8, or the wrong columns or keys, is a one-line error."""

from __future__ import annotations

from pathlib import Path

import pytest
from datasets import Dataset

from convoforge.datasets.catalog import Catalog, Item
from convoforge.errors import ConvoforgeError

BINARY = b"\x89PNG\r\n\x1a\n\xff\xfe\x00" * 20  # not UTF-8
CATALOG = Catalog([Item("1", "Toy Story", "1995")], "one film")


def movielens(folder: Path, **files: str | bytes) -> Path:
    """A MovieLens folder: good movies.csv and ratings.csv unless a file's content is given."""
    folder.mkdir()
    good = {
        "movies": "movieId,title,genres\n1,Toy Story (1995),Animation\n",
        "ratings": "userId,movieId,rating,timestamp\n7,1,5.0,1\n",
        "links": "movieId,imdbId,tmdbId\n1,0114709,862\n",
    }
    for name, content in (good | files).items():
        path = folder / f"{name}.csv"
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return folder


def _spc(tmp: Path) -> None:
    from convoforge.datasets.spc import read_spc

    (tmp / "spc.csv").write_bytes(BINARY)
    read_spc(tmp / "spc.csv")


def _catalogue(suffix: str):
    def read(tmp: Path) -> None:
        from convoforge.datasets.catalog import load_catalog

        (tmp / f"items{suffix}").write_bytes(BINARY)
        load_catalog(tmp / f"items{suffix}")

    read.__name__ = f"catalogue{suffix}"
    return read


def _ratings_bad_columns(tmp: Path) -> None:
    from convoforge.datasets.catalog import movielens_likes

    movielens_likes(movielens(tmp / "ml", ratings="user,film\n7,1\n") / "ratings.csv", CATALOG)


def _movies_not_text(tmp: Path) -> None:
    from convoforge.datasets.catalog import movielens_likes

    movielens_likes(movielens(tmp / "ml", movies=BINARY) / "ratings.csv", CATALOG)


def _history_bad_columns(tmp: Path) -> None:
    from convoforge.agents.recommender.profile import movielens_history

    movielens_history(movielens(tmp / "ml", movies="id,name\n1,x\n") / "ratings.csv", "7")


def _history_missing(tmp: Path) -> None:
    from convoforge.agents.recommender.profile import movielens_history

    movielens_history(tmp / "none" / "ratings.csv", "7")


def _collaborative_links(tmp: Path) -> None:
    from convoforge.agents.recommender.signals import MovieLensCF

    MovieLensCF(movielens(tmp / "ml", links=BINARY), CATALOG)


def _profile_rows(tmp: Path) -> None:
    from convoforge.datasets.export import profile_rows

    profile_rows(movielens(tmp / "ml", ratings=BINARY) / "ratings.csv")


def _turns(tmp: Path) -> None:
    from convoforge.simulators.evaluate_crs import load_turns

    (tmp / "turns.jsonl").write_bytes(BINARY)
    load_turns(tmp / "turns.jsonl", CATALOG)


def _dialogues_not_text(tmp: Path) -> None:
    from convoforge.simulators.realism import seeker_utterances

    (tmp / "dialogs.jsonl").write_bytes(BINARY)
    seeker_utterances(tmp / "dialogs.jsonl")


def _dialogues_other_keys(tmp: Path) -> None:
    from convoforge.simulators.realism import seeker_utterances

    (tmp / "dialogs.jsonl").write_text('{"conversationId": 1, "messages": []}\n')
    seeker_utterances(tmp / "dialogs.jsonl")


def _training_dialogues(tmp: Path) -> None:
    from convoforge.simulators.style import SeekerStyle

    (tmp / "train.jsonl").write_bytes(BINARY)
    SeekerStyle.from_dialogues([tmp / "train.jsonl"])


def _sessions_of_another_kind(tmp: Path) -> None:
    from convoforge.simulators.realism import realism_report

    persona = [{"messages": [{"speaker": "User 1", "content": "Hi."}]}]  # a persona dataset, not sessions
    Dataset.from_list(persona).save_to_disk(str(tmp / "personas"))
    realism_report(tmp / "personas", tmp / "dialogs.jsonl")


def sft_export(folder: Path) -> Path:
    """An SFT export (`export --format sft`): train and test splits of messages only."""
    from datasets import DatasetDict

    split = Dataset.from_list([{"messages": [{"role": "user", "content": "Hi."}]}])
    DatasetDict({"train": split, "test": split}).save_to_disk(str(folder))
    return folder


def _profile_eval_on_another_export(tmp: Path) -> None:
    from convoforge.training.evaluate import profile_report

    profile_report(sft_export(tmp / "export"), tmp / "adapter", "local:smollm2-135m", 4)


def _policy_eval_on_another_export(tmp: Path) -> None:
    from convoforge.training.evaluate import policy_report

    policy_report(sft_export(tmp / "export"), {"base": "scripted:echo"}, tmp / "rm", ["toxicity"], "scripted:echo")


@pytest.mark.parametrize(
    ("read", "message"),
    [
        (_spc, "spc.csv is not UTF-8 text; expected a Synthetic-Persona-Chat CSV"),
        (_catalogue(".csv"), "is not UTF-8 text; expected a MovieLens movies.csv"),
        (_catalogue(".json"), "is not UTF-8 text; expected a JSON object of id -> record"),
        (_catalogue(".jsonl"), "is not UTF-8 text; expected a catalogue"),
        (_ratings_bad_columns, "ratings.csv is not a MovieLens ratings.csv (needs columns movieId, rating, userId)"),
        (_movies_not_text, "movies.csv is not UTF-8 text"),
        (_history_bad_columns, "movies.csv is not a MovieLens movies.csv (needs columns genres, movieId, title)"),
        (_history_missing, "with movies.csv beside it"),
        (_collaborative_links, "links.csv is not UTF-8 text; expected a MovieLens links.csv"),
        (_profile_rows, "ratings.csv is not UTF-8 text; expected a MovieLens ratings.csv"),
        (_turns, "turns.jsonl is not UTF-8 text; expected iEvaLM turns"),
        (_dialogues_not_text, "dialogs.jsonl is not UTF-8 text; expected ReDial dialogues"),
        (_dialogues_other_keys, "record 1 needs initiatorWorkerId, messages, movieMentions"),
        (_training_dialogues, "train.jsonl is not UTF-8 text; expected ReDial dialogues"),
        (_sessions_of_another_kind, "is not a `convoforge simulate` dataset"),
        (_profile_eval_on_another_export, "is not an `export --format profile` set (needs catalog, held_out,"),
        (_policy_eval_on_another_export, "export has no persona pairs"),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else None,
)
def test_a_bad_file_is_a_one_line_error_naming_it(tmp_path, read, message):
    with pytest.raises(ConvoforgeError) as caught:
        read(tmp_path)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["generate", "samples", "--data", "BINARY", "--out", "OUT"], "not UTF-8 text; expected a Synthetic-Persona"),
        (["eval", "personas", "--data", "EXPORT"], "is not a persona dataset (needs splits accepted and rejected)"),
        (
            [
                *("eval", "policy", "--data", "EXPORT", "--adapter", "OUT", "--reward-model", "OUT"),
                *("--critic", "toxicity", "--critic-option", "toxicity.terms=x"),
            ],
            "critic 'toxicity' has no setting 'terms' (its settings: terms_file)",
        ),
    ],
)
def test_the_cli_says_so_in_one_line_and_exits_2(tmp_path, command, message):
    from tests.test_persona_cli import cf

    (tmp_path / "spc.csv").write_bytes(BINARY)
    sft_export(tmp_path / "export")
    paths = {"BINARY": str(tmp_path / "spc.csv"), "EXPORT": str(tmp_path / "export"), "OUT": str(tmp_path / "out")}
    result = cf(*[paths.get(a, a) for a in command])
    assert result.returncode == 2 and "Traceback" not in result.stderr and message in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_path_the_system_refuses_is_one_line_unless_verbose(tmp_path):
    from tests.test_persona_cli import cf

    (tmp_path / "file").write_text("not a folder")
    out = str(tmp_path / "file" / "run")  # under a file: the system refuses to make it
    result = cf("--model", "scripted:echo", "generate", "personas", "--out", out)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "Not a directory" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    verbose = cf("-v", "--model", "scripted:echo", "generate", "personas", "--out", out)
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr  # -v shows where
