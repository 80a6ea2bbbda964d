"""The one exception type users see: a clear, one-line message."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class ConvoforgeError(Exception):
    """An error with a message meant for the user (the CLI prints it as one line)."""


class ModelSpecError(ConvoforgeError):
    """A model spec string that names no backend or a missing file."""


class BackendError(ConvoforgeError):
    """A backend failed for good (after retries, or on a non-retryable answer)."""


@contextmanager
def reading(path: Path | str, what: str) -> Iterator[None]:
    """Reading a user's file: text that is not UTF-8, or a CSV the csv module refuses, is a one-line error."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise ConvoforgeError(f"{path} is not UTF-8 text; expected {what}") from exc
    except csv.Error as exc:
        raise ConvoforgeError(f"{path} is not {what} ({exc})") from exc
