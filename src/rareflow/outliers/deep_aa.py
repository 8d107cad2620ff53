"""DeepAA on a flow latent, Dirichlet sampling and null-space sampling (Bungert 2021).

Deep archetypal analysis (Keller, Samarin, Wieser & Roth 2019, "Deep archetypal analysis";
Keller et al. 2021, "Learning extremal representations with deep archetypal analysis", IJCV)
learns archetypes in a latent space. Here the latent is the flow's :math:`t = f(T(x))` (``d``
dims) and a head maps it to archetype coefficients and back (the seed slides' "Nullspace
Sampling" page):

.. math:: A = f_A(t) = \\mathrm{softmax}(M_A t) \\in \\Delta^{k-1}, \\qquad
          \\hat t = f_C(A z_{\\text{fixed}}) = M_C\\,(A z_{\\text{fixed}}) + b_C ,

with :math:`z_{\\text{fixed}}` the ``k`` vertices of a regular simplex in :math:`\\mathbb R^{k-1}`
(fixed archetype positions), :math:`M_A \\in \\mathbb R^{k\\times d}`,
:math:`M_C \\in \\mathbb R^{d \\times (k-1)}`. The head is trained with
:math:`\\lVert t - \\hat t\\rVert^2` (optionally plus the flow's NLL when the flow is trained
jointly), through :func:`rareflow.training.train`. It is initialised from classic AA
(:mod:`rareflow.outliers.archetypes`) on the latent points, with ``k`` at the elbow of the AA
reconstruction error when not given.

**Sampling.** :math:`A \\sim \\mathrm{Dirichlet}(c, \\dots, c)`: small :math:`c` puts :math:`A`
near the vertices (near the archetypes = extreme points), :math:`c = 1` uniform on the simplex,
large :math:`c` at the centre. ``expand`` > 1 pushes :math:`A` outside the simplex,
:math:`A' = \\tfrac1k + s(A - \\tfrac1k)` (rows still sum to 1, but entries may be negative), for
outliers beyond the archetypes. Then :math:`t' = f_C(A z_{\\text{fixed}})` and
:math:`x = T^{-1}(f^{-1}(t'))`.

**Null-space sampling.** :math:`f_C` reconstructs only a ``k-1``-dimensional affine subspace of
the latent; the directions the coefficient map does not see are the null space of :math:`M_A`,

.. math:: t = f_C(A z_{\\text{fixed}}) + (I - M_A^{+} M_A)\\, w, \\qquad w \\sim N(0, s^2 I_d),

so :math:`M_A t = M_A f_C(A z_{\\text{fixed}})` — the archetype coefficients are unchanged while
the remaining latent dimensions vary (:math:`M_A^{+}` the Moore-Penrose pseudo-inverse).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rareflow.errors import RareflowError
from rareflow.training import Batch, seeded, split_indices, to_tensor, train
from rareflow.outliers.archetypes import archetypal_analysis, select_k
from rareflow.outliers.latent import Generated, invert
from rareflow.seeding import derive_seed
from rareflow.seeding import rng as make_rng

DEFAULT_KS = tuple(range(2, 13))


def simplex_vertices(k: int) -> np.ndarray:
    """``(k, k-1)`` vertices of a regular simplex centred at 0 with unit distance to the centre."""
    if k < 2:
        raise RareflowError(f"DeepAA needs >= 2 archetypes, got {k}")
    C = np.eye(k) - 1.0 / k  # centred one-hot vectors span the sum-zero subspace
    U, _, _ = np.linalg.svd(C)
    V = C @ U[:, : k - 1]
    return V / np.linalg.norm(V[0])


class DeepAAHead(nn.Module):
    """:math:`A = \\mathrm{softmax}(M_A t)`, :math:`\\hat t = M_C (A z_{fixed}) + b_C`."""

    def __init__(self, d: int, k: int) -> None:
        super().__init__()
        self.d, self.k = int(d), int(k)
        self.M_A = nn.Linear(d, k, bias=False)
        self.M_C = nn.Linear(k - 1, d, bias=True)
        self.register_buffer("z_fixed", torch.as_tensor(simplex_vertices(k), dtype=torch.float32))

    def coefficients(self, t: Tensor) -> Tensor:
        """:math:`A = \\mathrm{softmax}(M_A t)` (rows on the simplex)."""
        return torch.softmax(self.M_A(t), dim=-1)

    def decode(self, A: Tensor) -> Tensor:
        """:math:`f_C(A z_{fixed}) = M_C A z_{fixed} + b_C`."""
        return self.M_C(A @ self.z_fixed.to(A.dtype))

    def forward(self, t: Tensor) -> Tensor:
        """Reconstruction :math:`\\hat t = f_C(f_A(t) z_{fixed})`."""
        return self.decode(self.coefficients(t))

    def null_projector(self) -> Tensor:
        """:math:`P = I - M_A^{+} M_A` (float64), the projector on the null space of :math:`M_A`."""
        M = self.M_A.weight.detach().double()
        return torch.eye(self.d, dtype=torch.float64, device=M.device) - torch.linalg.pinv(M) @ M

    @torch.no_grad()
    def init_from_archetypes(self, T: np.ndarray, A: np.ndarray, Z: np.ndarray) -> None:
        """Start from classic AA on latent points ``T``: decoder vertices at the archetypes ``Z``,
        :math:`M_A` by least squares on :math:`\\log A` (softmax is shift invariant)."""
        zf = self.z_fixed.double().numpy()
        b = Z.mean(axis=0)
        M_C = np.linalg.lstsq(zf, Z - b, rcond=None)[0].T  # zf @ M_C^T = Z - b
        logits = np.log(np.clip(A, 1e-3, None))
        logits -= logits.mean(axis=1, keepdims=True)
        M_A = np.linalg.lstsq(T, logits, rcond=None)[0].T
        self.M_C.weight.copy_(torch.as_tensor(M_C))
        self.M_C.bias.copy_(torch.as_tensor(b))
        self.M_A.weight.copy_(torch.as_tensor(M_A))


class DeepAA(nn.Module):
    """A flow (``FlowModel``) whose latent feeds a :class:`DeepAAHead`."""

    def __init__(self, flow: nn.Module, k: int) -> None:
        super().__init__()
        self.flow = flow
        self.head = DeepAAHead(int(flow.config.features), k)

    @property
    def k(self) -> int:
        return self.head.k

    def latent(self, X: np.ndarray) -> np.ndarray:
        """Flow latent :math:`t = f(T(x))` of data rows (float64 numpy)."""
        return self.flow.evaluate(X, latent=True)["z"]

    def _tensor(self, a: np.ndarray) -> Tensor:
        """``a`` on the head's device and dtype."""
        w = self.head.M_A.weight
        return torch.as_tensor(np.asarray(a), dtype=w.dtype, device=w.device)

    def reconstruct_latent(self, T: np.ndarray) -> np.ndarray:
        """:math:`\\hat t` for latent rows ``T``."""
        with torch.no_grad():
            return self.head(self._tensor(T)).double().cpu().numpy()

    def coefficients(self, T: np.ndarray) -> np.ndarray:
        """:math:`A` for latent rows ``T``."""
        with torch.no_grad():
            return self.head.coefficients(self._tensor(T)).double().cpu().numpy()

    def to_state(self) -> dict[str, np.ndarray]:
        """The head's weights as numpy (the flow is saved on its own)."""
        return {k: v.detach().cpu().numpy() for k, v in self.head.state_dict().items()}

    def load_head(self, arrays: dict[str, np.ndarray]) -> None:
        """Inverse of :meth:`to_state`."""
        self.head.load_state_dict({k: torch.as_tensor(np.array(v)) for k, v in arrays.items()})


def _recon_loss(head: nn.Module, batch: Batch) -> Tensor:
    """Mean squared latent reconstruction error per row, :math:`\\lVert t - \\hat t\\rVert^2 / d`."""
    return ((head(batch.x) - batch.x) ** 2).mean()


def _joint_loss(lam: float):
    """NLL of the flow plus ``lam`` times the head's latent reconstruction error (DeepAA + INN)."""

    def loss_fn(model: nn.Module, batch: Batch) -> Tensor:
        z, logp = model.flow.transform_and_log_prob(batch.x)
        return -logp.mean() + lam * ((model.head(z) - z) ** 2).sum(-1).mean()

    return loss_fn


def _initial_model(flow: nn.Module, X: np.ndarray | None, k: int | None, ks: tuple[int, ...], n_latent: int,
                   seed0: int) -> tuple[DeepAA, np.ndarray, dict[str, Any]]:  # fmt: skip
    """DeepAA initialised from classic AA on (at most 1500 of) the latent points; ``(model, T, info)``."""
    rng = make_rng(derive_seed(seed0, "deepaa-latent"))
    if X is not None:
        T = flow.evaluate(np.asarray(X, dtype=float), latent=True)["z"]
    else:
        T = rng.standard_normal((n_latent, int(flow.config.features)))
    sub = T[rng.permutation(len(T))[: min(len(T), 1500)]]
    info: dict[str, Any] = {}
    if k is None:
        k, info["aa_errors"] = select_k(sub, ks=ks, seed=derive_seed(seed0, "aa-k"), n_iter=60)
    aa = archetypal_analysis(sub, int(k), n_iter=100, seed=derive_seed(seed0, "aa"))
    with seeded(derive_seed(seed0, "deepaa-init")):
        model = DeepAA(flow, int(k))
    model.head.init_from_archetypes(sub, aa.A, aa.Z)
    info.update(k=int(k), aa_error=aa.error)
    return model, T, info


def fit_deep_aa(
    flow: nn.Module,
    X: np.ndarray | None = None,
    k: int | None = None,
    *,
    ks: tuple[int, ...] = DEFAULT_KS,
    n_latent: int = 4000,
    train_flow: bool = False,
    lam: float = 1.0,
    epochs: int = 60,
    batch_size: int = 256,
    lr: float = 3e-3,
    seed: int | None = 0,
    n_threads: int | None = None,
    progress: bool = False,
    device: str | torch.device | None = None,
) -> tuple[DeepAA, dict[str, Any]]:
    """Fit a DeepAA head on the latent of ``flow``; returns ``(model, info)``.

    Latent points: the flow's latent of data rows ``X`` when given, else ``n_latent`` draws
    :math:`t \\sim N(0, I_d)` (the latent law of a perfect flow: no data needed, which is what
    ``rareflow outliers`` uses). ``k=None``: the elbow of classic AA errors over ``ks`` on (at most
    1500 of) those points. ``train_flow=True`` trains flow and head jointly on ``X``
    (:math:`\\mathrm{NLL} + \\lambda \\lVert t - \\hat t\\rVert^2`), otherwise the flow stays fixed.
    The flow passed in is never modified: joint training works on a copy (``model.flow``).
    Training runs on ``device`` (default: the flow's device, i.e. the detector's).
    ``info``: ``k``, ``aa_errors`` (per k, when chosen), ``history``, ``recon_mse``.
    """
    if train_flow:
        if X is None:
            raise RareflowError("train_flow=True needs data rows X to train the flow on")
        import copy

        flow = copy.deepcopy(flow)
    seed0 = int(np.random.default_rng().integers(2**31 - 1)) if seed is None else int(seed)  # None: fresh entropy
    model, T, info = _initial_model(flow, X, k, ks, n_latent, seed0)
    tr, va = split_indices(len(T), 0.2, derive_seed(seed0, "deepaa-split"))
    device = next(flow.parameters()).device if device is None else device
    common = dict(epochs=epochs, batch_size=batch_size, lr=lr, patience=10, seed=derive_seed(seed0, "deepaa-train"),
                  n_threads=n_threads, progress=progress, device=device)  # fmt: skip
    if train_flow:
        Xa = np.asarray(X, dtype=float)
        info["history"] = train(model, _joint_loss(lam), Batch(to_tensor(Xa[tr])), Batch(to_tensor(Xa[va])),
                                description="DeepAA (flow + head)", **common)  # fmt: skip
        T = model.latent(Xa)
    else:
        info["history"] = train(model.head, _recon_loss, Batch(to_tensor(T[tr])), Batch(to_tensor(T[va])),
                                description="DeepAA head", **common)  # fmt: skip
    model.eval()
    info["recon_mse"] = float(np.mean((model.reconstruct_latent(T) - T) ** 2))
    return model, info


# -- sampling ----------------------------------------------------------------------------------
def dirichlet_coefficients(
    n: int, k: int, concentration: float, rng: np.random.Generator, expand: float = 1.0
) -> np.ndarray:
    """:math:`A = \\tfrac1k + s(D - \\tfrac1k)`, :math:`D \\sim \\mathrm{Dir}(c \\mathbf 1_k)`; ``s=1``: on the simplex."""
    if concentration <= 0:
        raise RareflowError(f"Dirichlet concentration must be > 0, got {concentration}")
    D = rng.dirichlet(np.full(k, float(concentration)), size=n)
    # tiny concentrations underflow to rows of zeros/NaN in numpy: fall back to the nearest vertex
    bad = ~np.isfinite(D).all(axis=1) | (np.abs(D.sum(axis=1) - 1) > 1e-6)
    if bad.any():
        D[bad] = np.eye(k)[rng.integers(k, size=int(bad.sum()))]
    return 1.0 / k + float(expand) * (D - 1.0 / k)


def _latent_to_generated(model: DeepAA, t: np.ndarray, A: np.ndarray, method: str, params: dict) -> Generated:
    x = invert(model.flow, t)
    ok = np.isfinite(x).all(axis=1)
    if not ok.all():
        raise RareflowError(f"{int((~ok).sum())} generated points have no finite inverse; lower expand/scale")
    p = np.full(len(t), float(params.get("concentration", math.nan)))
    return Generated(x=x, z=t, radius=np.linalg.norm(t, axis=1), p=p, method=method, params={**params, "A": A})


def sample_archetype(
    model: DeepAA, n: int, concentration: float = 0.1, seed: int | None = 0, expand: float = 1.0
) -> Generated:
    """``n`` points :math:`x = f^{-1}(f_C(A z_{fixed}))` with Dirichlet coefficients (see module doc)."""
    rng = make_rng(seed)
    A = dirichlet_coefficients(n, model.k, concentration, rng, expand)
    with torch.no_grad():
        t = model.head.decode(model._tensor(A)).double().cpu().numpy()
    params = {"method": "archetype", "concentration": concentration, "expand": expand, "k": model.k, "seed": seed}
    return _latent_to_generated(model, t, A, "archetype", params)


def nullspace_latent(head: DeepAAHead, A: np.ndarray, w: np.ndarray) -> np.ndarray:
    """:math:`t = f_C(A z_{fixed}) + (I - M_A^+ M_A) w` in float64."""
    M_C = head.M_C.weight.detach().double().cpu().numpy()
    b = head.M_C.bias.detach().double().cpu().numpy()
    base = (A @ head.z_fixed.double().cpu().numpy()) @ M_C.T + b
    return base + w @ head.null_projector().cpu().numpy().T


def sample_nullspace(
    model: DeepAA, n: int, concentration: float = 0.1, seed: int | None = 0, scale: float = 1.0, expand: float = 1.0
) -> Generated:
    """``n`` null-space samples: Dirichlet coefficients plus :math:`(I - M_A^+M_A) w`, :math:`w \\sim N(0, s^2 I)`."""
    rng = make_rng(seed)
    A = dirichlet_coefficients(n, model.k, concentration, rng, expand)
    w = float(scale) * rng.standard_normal((n, model.head.d))
    t = nullspace_latent(model.head, A, w)
    params = {"method": "nullspace", "concentration": concentration, "scale": scale, "expand": expand,
              "k": model.k, "seed": seed}  # fmt: skip
    return _latent_to_generated(model, t, A, "nullspace", params)
