"""Weight (de)serialisation: ``state_dict`` <-> dict of numpy arrays, the one pair every torch detector uses.

:func:`module_arrays` writes every parameter and buffer as a numpy array under a prefix.
:func:`load_module` rebuilds a module from a *builder* (a zero-argument callable that constructs
the architecture described by the model file's JSON) and those arrays, safely:

1. ``min_elements`` (a lower bound of the weight count the stored JSON implies, computed from the
   JSON without building anything) is compared with the stored arrays: a file whose JSON asks for
   huge layers (an "architecture bomb") is refused here; then the builder runs under
   ``torch.device("meta")``: modules get shapes but no memory (modules that need real data to be
   built — zuko's autoregressive masks use ``unique`` — skip this step and rely on the bound);
2. every parameter/buffer name and shape of that meta module is compared with the stored arrays,
   and any difference raises ``RareflowError("damaged model file: ...")``;
   (a module may list buffers that older files lack in a class attribute ``optional_state``);
3. only then is the module built for real (on the CPU) and the arrays loaded strictly.

Since the stored arrays were already read (and their size bounded by the file), a module that
matches them can never allocate more than the file holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from rareflow.errors import RareflowError

M = TypeVar("M", bound=nn.Module)


def module_arrays(module: nn.Module, prefix: str = "") -> dict[str, np.ndarray]:
    """``module.state_dict()`` as ``{prefix + name: numpy array}`` (host copies, contiguous)."""
    return {prefix + k: v.detach().cpu().contiguous().numpy() for k, v in module.state_dict().items()}


def prefixed(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The entries of ``arrays`` whose key starts with ``prefix``, with the prefix removed."""
    return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}


def _damaged(what: str, detail: str) -> RareflowError:
    return RareflowError(f"damaged model file: the stored {what} {detail}; retrain or use an intact file")


def _meta_shapes(build: Callable[[], nn.Module], what: str) -> tuple[dict[str, tuple[int, ...]], set[str]] | None:
    """Names and shapes of ``build()``'s state built on the meta device; None where an op needs real data."""
    try:
        with torch.device("meta"):
            probe = build()
    except (NotImplementedError, RuntimeError) as exc:
        if "meta" not in str(exc).lower():
            raise _damaged(what, f"architecture cannot be built ({type(exc).__name__}: {str(exc)[:200]})") from None
        return None
    except RareflowError as exc:
        raise _damaged(what, f"architecture is invalid ({exc})") from None
    except Exception as exc:  # anything the stored JSON makes the builder choke on
        raise _damaged(what, f"architecture cannot be built ({type(exc).__name__}: {str(exc)[:200]})") from None
    shapes = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
    optional = {f"{name}.{b}" if name else b for name, mod in probe.named_modules() for b in getattr(mod, "optional_state", ())}
    return shapes, optional


def check_shapes(
    expected: dict[str, tuple[int, ...]], arrays: dict[str, np.ndarray], what: str, optional: set[str] = frozenset()
) -> None:
    """Raise ``damaged model file`` unless ``arrays`` holds exactly the names and shapes ``expected``
    (names in ``optional`` — buffers added after files were first saved — may be absent)."""
    missing = sorted(set(expected) - set(arrays) - set(optional))
    extra = sorted(set(arrays) - set(expected))
    if missing or extra:
        names = (missing or extra)[:3]
        raise _damaged(what, f"weights do not match its architecture ({'missing' if missing else 'unexpected'}: {names})")
    for k, shape in expected.items():
        if k in arrays and tuple(np.shape(arrays[k])) != shape:
            raise _damaged(
                what, f"weights do not match its architecture ({k}: stored {tuple(np.shape(arrays[k]))}, built {shape})"
            )


def load_module(
    build: Callable[[], M],
    arrays: dict[str, np.ndarray],
    prefix: str = "",
    what: str = "model",
    device: torch.device | str = "cpu",
    min_elements: int | None = None,
) -> M:
    """The module ``build()`` with the ``prefix``-ed ``arrays`` loaded, on ``device``, in eval mode.

    Shapes are checked on the meta device first (see the module docstring); ``what`` names the
    model in the error message.
    """
    weights = prefixed(arrays, prefix)
    stored = sum(int(np.size(v)) for v in weights.values())
    if min_elements is not None and int(min_elements) > stored:
        raise _damaged(what, f"architecture needs at least {int(min_elements)} weights but the file holds {stored}")
    meta = _meta_shapes(build, what)
    if meta is not None:
        check_shapes(meta[0], weights, what, meta[1])
    elif min_elements is None:
        raise _damaged(what, "architecture cannot be checked before it is built (no size bound given)")
    try:
        module = build()
    except RareflowError as exc:
        raise _damaged(what, f"architecture is invalid ({exc})") from None
    if meta is None:
        expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        optional = {f"{n}.{b}" if n else b for n, m in module.named_modules() for b in getattr(m, "optional_state", ())}
        check_shapes(expected, weights, what, optional)
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in weights.items()}, strict=False)
    return module.to(device).eval()
