"""Ray for many machines: a pool of worker actors, each built once, that run shards of a graph.

Ray restarts a worker that dies and retries its shard (`max_restarts`, `max_task_retries`); what a shard
returns goes back to the caller, whose graph checkpoints it. Install with `pip install convoforge[ray]`.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from typing import Any

from convoforge.errors import ConvoforgeError

LOCAL = "local"  # `--ray` with no address: start a Ray instance on this machine


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ConvoforgeError("--ray needs Ray: pip install 'convoforge[ray]'") from exc
    return ray


def connect(address: str | None, num_cpus: int | None = None) -> Any:
    """Join the Ray cluster at `address` ('auto', 'ray://host:port'), or start one here for 'local' / None."""
    ray = _ray()
    if ray.is_initialized():
        return ray
    env = {"HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "0")}
    if address in (None, "", LOCAL):
        # workers on this machine import what the driver imports (a checkout's tests, plug-in modules)
        env["PYTHONPATH"] = os.pathsep.join(p for p in [os.getcwd(), *sys.path] if p and os.path.isdir(p))
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    else:
        try:
            ray.init(address=address, log_to_driver=False, runtime_env={"env_vars": env})
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConvoforgeError(f"cannot join the Ray cluster at {address}: {exc}") from exc
    return ray


class _Worker:
    """One Ray actor: builds its runner once (models, critics, graph), then runs one shard per call."""

    def __init__(self, factory: Callable[[], Callable[[Any], Any]]) -> None:
        self.runner = factory()

    async def run(self, payload: Any) -> Any:
        """Run one shard."""
        return await self.runner(payload)

    def pid(self) -> int:
        """The worker's process id (tests kill it)."""
        return os.getpid()


class RayPool:
    """`workers` actors made by `factory`; `await pool.run(payload)` runs a shard on the next idle one."""

    def __init__(
        self,
        factory: Callable[[], Callable[[Any], Any]],
        workers: int | None = None,
        address: str | None = None,
        cpus_per_worker: float = 1.0,
        retries: int = 3,
    ) -> None:
        ray = connect(address)
        n = workers or max(1, int(ray.cluster_resources().get("CPU", 1) // max(cpus_per_worker, 0.01)))
        actor = ray.remote(num_cpus=cpus_per_worker, max_restarts=-1, max_task_retries=retries)(_Worker)
        self.actors = [actor.remote(factory) for _ in range(n)]
        self._idle: asyncio.Queue | None = None

    def wait_ready(self) -> list[int]:
        """Block until every worker is built (models loaded); a worker that cannot be built is a one-line error."""
        ray = _ray()
        try:
            return ray.get([a.pid.remote() for a in self.actors])
        except ray.exceptions.RayError as exc:
            cause = str(exc).strip().splitlines()[-1][:300]
            raise ConvoforgeError(f"a Ray worker could not start: {cause}") from exc

    def __len__(self) -> int:
        return len(self.actors)

    async def run(self, payload: Any) -> Any:
        """Run one shard on an idle worker (waits for one); a worker that dies is restarted and the shard retried."""
        if self._idle is None:
            self._idle = asyncio.Queue()
            for a in self.actors:
                self._idle.put_nowait(a)
        worker = await self._idle.get()
        try:
            return await worker.run.remote(payload)
        finally:
            self._idle.put_nowait(worker)

    def close(self) -> None:
        """Stop the workers (the Ray instance stays up for the process; `shutdown` ends it)."""
        ray = _ray()
        for a in self.actors:
            ray.kill(a)
        self.actors = []


def shutdown() -> None:
    """End this process's connection to Ray (and the instance, if this process started it)."""
    ray = _ray()
    if ray.is_initialized():
        ray.shutdown()
