"""The Dask backend: compare sweeps, scoring and extraction on a cluster, same numbers.

``scheduler="local"`` starts a ``distributed.LocalCluster`` sized to the machine (one
single-threaded worker process per core, so BLAS/OpenMP threads do not oversubscribe);
any other string is a scheduler address (``tcp://host:8786``) of an existing cluster. The data
arguments shared by every task are scattered once (:func:`run_tasks`); the caller's task function
seeds itself (the compare runner's ``run_task`` does), so results do not depend on which worker runs it.
This module is generic: it runs the callables it is given and imports nothing but the shared
mechanisms (errors, progress), so every layer may use it. Scoring (one task per Parquet row group,
the model file loaded on each worker from its path) and extraction (one task per input file) go
through :func:`map_ordered`: a bounded number of tasks in flight, results consumed in input order,
so the client writes the output in row order with bounded memory. Install with
``pip install 'rareflow[dask]'``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from rareflow.errors import RareflowError


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise RareflowError("the Dask backend needs dask.distributed: pip install 'rareflow[dask]'") from None
    return distributed


@contextlib.contextmanager
def dask_client(scheduler: str, n_workers: int | None = None) -> Iterator[Any]:
    """A ``distributed.Client``: a new local cluster for ``"local"``, else connect to the address."""
    distributed = _distributed()
    logging.getLogger("distributed").setLevel(logging.WARNING)
    if scheduler == "local":
        n = n_workers or os.cpu_count() or 1
        with distributed.LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None, silence_logs=logging.WARNING,
        ) as cluster, distributed.Client(cluster) as client:
            yield client
    else:
        try:
            client = distributed.Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise RareflowError(f"cannot reach Dask scheduler {scheduler!r} ({exc}); check the address") from None
        with client:
            yield client


def run_tasks(
    scheduler: str,
    fn: Callable[..., Any],
    tasks: Sequence[tuple[Any, ...]],
    shared: Sequence[Any] = (),
    n_workers: int | None = None,
    label: str = "tasks",
) -> list[Any]:
    """``fn(*shared, *task)`` for every task on Dask; results in task order.

    ``shared`` arguments (e.g. the data set) are scattered to every worker once; a progress bar
    named ``label`` counts finished tasks.
    """
    from rareflow.progress import make_progress

    distributed = _distributed()
    with dask_client(scheduler, n_workers) as client:
        shared_f = client.scatter(list(shared), broadcast=True) if shared else []
        futures = [client.submit(fn, *shared_f, *task, pure=False) for task in tasks]
        with make_progress() as progress:
            bar = progress.add_task(f"{label} (dask)", total=len(futures), info=f"{len(client.scheduler_info()['workers'])} workers")
            for _ in distributed.as_completed(futures):
                progress.advance(bar)
        return client.gather(futures)


def n_slots(client: Any) -> int:
    """Task slots of the cluster: the sum of its workers' threads (at least 1)."""
    return max(sum(client.nthreads().values()), 1)


def map_ordered(client: Any, fn: Callable[..., Any], args: Iterable[tuple[Any, ...]], window: int | None = None) -> Iterator[Any]:
    """``fn(*a)`` for every ``a`` in ``args`` on the cluster; results yielded in input order.

    At most ``window`` tasks (default: 2 per worker thread) are in flight, so neither the cluster nor this
    process holds more than ``window`` results at a time. A task's exception (e.g. a
    :class:`RareflowError` naming the file and row) is re-raised here; the remaining tasks are cancelled.
    """
    window = max(int(window or 2 * n_slots(client)), 1)
    pending: deque[Any] = deque()
    try:
        for a in args:
            pending.append(client.submit(fn, *a, pure=False))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        if pending:
            client.cancel(list(pending))
