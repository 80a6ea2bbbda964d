"""The one exception type users see: a clear, one-line message."""


class ConvoforgeError(Exception):
    """An error with a message meant for the user (the CLI prints it as one line)."""


class ModelSpecError(ConvoforgeError):
    """A model spec string that names no backend or a missing file."""


class BackendError(ConvoforgeError):
    """A backend failed for good (after retries, or on a non-retryable answer)."""
