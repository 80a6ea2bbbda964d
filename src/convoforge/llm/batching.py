"""A request gatherer: concurrent requests become one batched `generate` call.

transformers' own continuous batching (`generate_batch`, paged attention) was
measured first on the 2-core CPU: 28 tok/s for 8 requests against 98 tok/s for a
static left-padded `generate` (sequential: 20 tok/s), and it takes one
GenerationConfig for every request. So this module gathers requests from any
thread or event loop into static batches, and keeps per-request sampling
settings through row-wise logits processing and stopping (see local.py).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from convoforge.llm.types import GenParams


@dataclass
class Job:
    """One request waiting for the model."""

    prompt_ids: list[int]
    params: GenParams
    future: Future = field(default_factory=Future)
    streamer: Any = None
    grammar: str | None = None


class Batcher:
    """Runs jobs on one worker thread, up to max_batch rows per `generate` call."""

    def __init__(self, run_batch: Callable[[list[Job]], None], max_batch: int = 16, window_s: float = 0.005) -> None:
        self._run_batch = run_batch
        self.max_batch = max_batch
        self.window_s = window_s
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="convoforge-batcher", daemon=True)
        self._thread.start()
        self.batch_sizes: list[int] = []

    def submit(self, job: Job) -> Future:
        """Queue a job; its future resolves to the backend's result."""
        if not self._thread.is_alive():
            raise RuntimeError("the batcher was closed")
        self._queue.put(job)
        return job.future

    def close(self) -> None:
        """Stop the worker after the jobs already queued."""
        self._queue.put(None)
        self._thread.join(timeout=60)

    def _gather(self, first: Job) -> tuple[list[Job], bool]:
        """Collect jobs that arrive within the window, up to max_batch rows."""
        batch, rows, stop = [first], first.params.n, False
        deadline = time.monotonic() + self.window_s
        while rows < self.max_batch:
            timeout = deadline - time.monotonic()
            try:
                job = self._queue.get(timeout=max(timeout, 0)) if timeout > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                stop = True
                break
            if job.streamer is not None or rows + job.params.n > self.max_batch:
                self._queue.put(job)  # streamed and oversized jobs run in a later round
                break
            batch.append(job)
            rows += job.params.n
        return batch, stop

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = ([first], False) if first.streamer is not None else self._gather(first)
            self.batch_sizes.append(sum(j.params.n for j in batch))
            try:
                self._run_batch(batch)
            except BaseException as exc:  # a failed batch fails its callers, not the worker
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
                if job.streamer is not None:
                    job.streamer.end()
            if stop:
                return
