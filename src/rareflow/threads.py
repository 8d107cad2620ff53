"""One thread policy for torch, BLAS and OpenMP, chosen once at the start of a command.

Why: on a few shared cores, unlimited thread pools oversubscribe. OpenMP (scikit-learn's
histogram gradient boosting), BLAS (numpy, scipy) and torch each start one thread per core by
default; with two such pools and another busy process on a 2-core machine a 1 s gbdt fit took
5-100 s. rareflow therefore sets every pool to the *same* number ``n``:

* the native pools of this process through ``threadpoolctl`` (OpenMP and every BLAS library
  already loaded, or loaded later by the libraries that read the environment, see below);
* torch's intra-op and inter-op pools with ``torch.set_num_threads`` when torch is already
  imported (:func:`apply_thread_policy` never imports torch itself: a torch imported later
  sizes its pool from ``OMP_NUM_THREADS``, set below);
* the environment variables ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``,
  ``VECLIB_MAXIMUM_THREADS`` and ``NUMEXPR_NUM_THREADS``, so that libraries loaded later and
  child processes (Dask workers of a local cluster) start with the same limit.

Default ``n`` (``--threads`` not given, or ``--threads 0``): ``OMP_NUM_THREADS`` when the user set
it before rareflow started, else :func:`default_threads` = ``min(usable cores, 4)``, reduced to the
cores left idle by other processes (``os.getloadavg``'s 1-minute load average), and at least 1.
More than 4 threads rarely speeds up the small networks and tables rareflow trains; an explicit
``--threads N`` always wins.
"""

from __future__ import annotations

import math
import os
import sys

#: Upper bound of the automatic choice (an explicit ``--threads`` may exceed it).
MAX_DEFAULT_THREADS = 4
#: Environment variables read by OpenMP, the BLAS libraries and numexpr when they load.
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

_USER_OMP = os.environ.get("OMP_NUM_THREADS")  # as set before rareflow changed it
_CURRENT: int | None = None
_LIMITER = None  # the threadpoolctl limiter, kept alive so its limits hold


def usable_cores() -> int:
    """Cores this process may run on (CPU affinity where the OS has it, else ``os.cpu_count``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads(cores: int | None = None, load: float | None = None) -> int:
    """``min(cores, 4)`` minus the cores other processes keep busy (1-min load average), >= 1.

    ``cores``/``load`` default to :func:`usable_cores` and ``os.getloadavg()[0]`` (0 where the
    OS has no load average).
    """
    cores = usable_cores() if cores is None else max(1, int(cores))
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            load = 0.0
    idle = cores - int(math.ceil(max(0.0, float(load)) - 0.5))  # a load of 0.4 does not take a core
    return max(1, min(cores, MAX_DEFAULT_THREADS, idle))


def resolve_threads(threads: int | None) -> int:
    """``threads`` when positive, else the user's ``OMP_NUM_THREADS``, else :func:`default_threads`."""
    if threads is not None and int(threads) < 0:
        from rareflow.errors import RareflowError

        raise RareflowError(f"--threads {threads}: give a positive number of threads, or 0 for the default")
    if threads:
        return int(threads)
    if _USER_OMP and _USER_OMP.strip().isdigit() and int(_USER_OMP) > 0:
        return int(_USER_OMP)
    return default_threads()


def apply_thread_policy(threads: int | None = None) -> int:
    """Limit torch, BLAS and OpenMP pools (and child processes) to one number; returns it."""
    global _CURRENT, _LIMITER
    n = resolve_threads(threads)
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(n)
    from threadpoolctl import threadpool_limits

    _LIMITER = threadpool_limits(limits=n)
    if "torch" in sys.modules:
        _set_torch_threads(n)
    _CURRENT = n
    return n


def current_threads() -> int | None:
    """The number set by the last :func:`apply_thread_policy` (None if never applied)."""
    return _CURRENT


def _set_torch_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)
    try:  # the inter-op pool can only be sized before its first use
        torch.set_num_interop_threads(n)
    except RuntimeError:
        pass
