"""Digits in-distribution, letters as real outliers: training with flow-generated outliers (Bungert 2021).

Usage (from the repository root, ~5-8 min on 2 CPU cores for 3 seeds)::

    OMP_NUM_THREADS=1 python examples/digits_vs_letters.py --out out/digits_letters --seeds 0 1 2

``--classifier mlp cnn`` adds a convolutional digit classifier beside the MLP (``--classifier cnn``
alone: only the CNN; see step 4); both for 3 seeds: ~19 min on the shared 2 cores.

Data (never copied into the repository): the MNIST test split and notMNIST letters A-J from
``../shared/data/images`` (``--data`` to point elsewhere). Per seed:

1. the 10,000 digits are split 50/50 into train/test; letters into 5,000 "oracle" training
   letters and 1,250 test letters (test: 5,000 digits + 1,250 letters, letter fraction 0.2);
2. PCA (``--pca`` components, default 32) of the pixels in [0, 1], fitted on the digit TRAIN split;
3. a RealNVP flow on the PCA features of the digit train split;
4. for each generator (p-sigma shells, chi tail, Gumbel, DeepAA Dirichlet / null-space) 5,000
   generated outliers; a discriminator (digits vs generated) and a 10-class digit classifier with
   outlier exposure (beta = 0.5) are trained on the PCA features; both are scored on the test set
   (AUC / AP of letters vs digits) — the rows of the seed's tables. With ``--classifier cnn`` the
   digit classifier is :class:`DigitCNN` on the 28x28 images instead (generated outliers decoded
   by the PCA's inverse transform, clipped to [0, 1]); the discriminator stays on PCA features;
5. references: the classifier without outliers ("none"), both trained with the real letters
   ("letters, oracle"), and the flow's own NLL.

Outputs in ``--out``: ``results.json`` (per seed and mean/std), ``results.md`` (the tables),
``grid_extremal.png`` (generated inliers and outliers at increasing sigma, decoded to images),
``grid_deepaa.png``, ``radii.png`` (sampled radii against the chi_d density), ``aa_elbow.png`` and
``archetypes.png`` (classic AA on the digit PCA features).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.decomposition import PCA
from sklearn.metrics import average_precision_score, roc_auc_score
from torch import Tensor, nn

from rareflow.atomic import write_text_atomic
from rareflow.flows import FlowConfig, FlowModel, Preprocessor, nll_loss
from rareflow.flows.losses import trimmed_nll_loss
from rareflow.io.idx import load_idx_pair
from rareflow.nets.conv import ConvEncoder
from rareflow.outliers.archetypes import archetypal_analysis, select_k
from rareflow.outliers.deep_aa import fit_deep_aa, sample_archetype, sample_nullspace
from rareflow.outliers.latent import generate, plot_radii, sigma_radius
from rareflow.outliers.training import (
    classifier_score,
    discriminator_score,
    predict_classes,
    train_discriminator,
    train_oe_classifier,
    train_oe_net,
)
from rareflow.seeding import derive_seed
from rareflow.training import Batch, split_indices, to_tensor, train

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"

#: (row label, generator, p) — p = sigma for the radius laws, the Dirichlet concentration for DeepAA
GENERATORS: list[tuple[str, str, float]] = [
    ("INN, Normal, p = 1.5", "extremal", 1.5),
    ("INN, Normal, p = 2.0", "extremal", 2.0),
    ("INN, Normal, p = 2.5", "extremal", 2.5),
    ("INN, Normal, p = 3.0", "extremal", 3.0),
    ("INN, chi tail, p > 2.0", "tail", 2.0),
    ("INN, Gumbel, p = 2.5", "gumbel", 2.5),
    ("DeepAA, p = 0.1", "archetype", 0.1),
    ("DeepAA, p = 1.0", "archetype", 1.0),
    ("DeepAA null space, p = 0.1", "nullspace", 0.1),
    ("DeepAA null space, p = 1.0", "nullspace", 1.0),
]
QUICK = [g for g in GENERATORS if g[0] in ("INN, Normal, p = 1.5", "INN, Gumbel, p = 2.5")]
#: digit classifiers: result part and table column label
CLASSIFIERS: dict[str, tuple[str, str]] = {"mlp": ("oe", "OE classifier"), "cnn": ("oe_cnn", "OE CNN")}
#: training of :class:`DigitCNN` (chosen on the validation split of the training rows, never on letters)
CNN_TRAINING: dict[str, Any] = {"epochs": 10, "batch_size": 128, "lr": 2e-3, "weight_decay": 1e-4, "patience": 3}


@dataclass
class Config:
    pca: int = 32
    n_gen: int = 5000
    flow_epochs: int = 150
    transforms: int = 6
    beta: float = 0.5
    n_letters_test: int = 1250
    deepaa_k: int | None = None  # None: elbow of classic AA on the digit PCA features
    generators: list[tuple[str, str, float]] = field(default_factory=lambda: list(GENERATORS))
    classifiers: list[str] = field(default_factory=lambda: ["mlp"])


@dataclass
class Split:
    """PCA features of one seed's split, the fitted PCA, and the pixels (rows of 784 in [0, 1]) of
    the same rows: ``pixels["train" | "test" | "letters_train" | "letters_test"]``."""

    pca: PCA
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    L_train: np.ndarray
    L_test: np.ndarray
    pixels: dict[str, np.ndarray] = field(default_factory=dict)

    def eval_images(self) -> np.ndarray:
        """Pixels of :meth:`eval_set`'s rows (same order)."""
        return np.vstack([self.pixels["test"], self.pixels["letters_test"]])

    def decode(self, X: np.ndarray) -> np.ndarray:
        """Images of PCA features: :math:`\\mathrm{clip}(W^T x + \\mu, 0, 1)` (the PCA's inverse transform)."""
        return np.clip(self.pca.inverse_transform(X), 0.0, 1.0)

    def eval_set(self) -> tuple[np.ndarray, np.ndarray]:
        """Test digits (0) + test letters (1)."""
        return np.vstack([self.X_test, self.L_test]), np.r_[np.zeros(len(self.X_test)), np.ones(len(self.L_test))]


def load_images(data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(digits (n, 784) in [0, 1], digit labels, letters (m, 784))`` from the IDX files."""
    xd, yd = load_idx_pair(data / "images" / "mnist_test")
    xl, _ = load_idx_pair(data / "images" / "notmnist_test")
    return xd.reshape(len(xd), -1) / 255.0, yd.astype(np.int64), xl.reshape(len(xl), -1) / 255.0


def make_split(digits: np.ndarray, labels: np.ndarray, letters: np.ndarray, seed: int, cfg: Config) -> Split:
    """Seeded 50/50 digit split, letter split, PCA on the digit train split only."""
    r = np.random.default_rng(derive_seed(seed, "split"))
    pd_, pl = r.permutation(len(digits)), r.permutation(len(letters))
    tr, te = pd_[: len(digits) // 2], pd_[len(digits) // 2 :]
    ltr, lte = pl[: len(letters) // 2], pl[len(letters) // 2 : len(letters) // 2 + cfg.n_letters_test]
    pca = PCA(cfg.pca, random_state=derive_seed(seed, "pca")).fit(digits[tr])
    f = pca.transform
    pixels = {"train": digits[tr], "test": digits[te], "letters_train": letters[ltr], "letters_test": letters[lte]}
    return Split(pca, f(digits[tr]), labels[tr], f(digits[te]), labels[te], f(letters[ltr]), f(letters[lte]), pixels)


def fit_flow(X: np.ndarray, seed: int, cfg: Config) -> FlowModel:
    """RealNVP (``cfg.transforms`` couplings of 128x128 ELU) on the digit PCA features."""
    config = FlowConfig("realnvp", features=X.shape[1], transforms=cfg.transforms, hidden=(128, 128), activation="elu")
    model = FlowModel(config, Preprocessor.fit(X), seed=derive_seed(seed, "flow-init"))
    tr, va = split_indices(len(X), 0.2, derive_seed(seed, "flow-split"))
    train(model, nll_loss, Batch(to_tensor(X[tr])), Batch(to_tensor(X[va])), val_loss_fn=trimmed_nll_loss(0.01),
          epochs=cfg.flow_epochs, batch_size=256, lr=1e-3, weight_decay=1e-5, patience=15,
          seed=derive_seed(seed, "flow-train"), progress=False, description="flow (digits)")  # fmt: skip
    return model


def metrics(y: np.ndarray, s: np.ndarray) -> dict[str, float]:
    return {"auc": float(roc_auc_score(y, s)), "ap": float(average_precision_score(y, s))}


class DigitCNN(nn.Module):
    """Small CNN on 28x28 images given as rows of 784 values in [0, 1] -> ``n_classes`` logits.

    :class:`~rareflow.nets.conv.ConvEncoder` (3x3 conv + ReLU stages of ``channels``, stride 2 from
    the second stage on: 28 -> 28 -> 14 for the default two), flattened, one hidden layer, logits.
    Rows in, logits out: the OE loss, scores and batched inference of
    :mod:`rareflow.outliers.training` apply as to the MLP.
    """

    def __init__(self, n_classes: int, channels: tuple[int, ...] = (16, 32), hidden: int = 64) -> None:
        super().__init__()
        self.encoder = ConvEncoder(1, channels)
        side = -(-28 // self.encoder.multiple)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels[-1] * side * side, hidden), nn.ReLU(),
                                  nn.Linear(hidden, n_classes))  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encoder(x.reshape(-1, 1, 28, 28)))


def digit_classifier(kind: str, sp: Split, X_out: np.ndarray | None, images: np.ndarray | None, seed: int,
                     cfg: Config) -> dict[str, float]:  # fmt: skip
    r"""AUC / AP (letters vs digits, score :math:`-\max_k p(k \mid x)`) and digit accuracy of one
    10-class digit classifier with outlier exposure (Hendrycks et al. 2019; ``cfg.beta``).

    ``kind`` ``mlp``: MLP on the PCA features, outliers ``X_out``; ``cnn``: :class:`DigitCNN` on
    the pixels, outliers ``images`` (real outlier images) or else ``X_out`` decoded by the PCA.
    """
    X_eval, y_eval = sp.eval_set()
    if kind == "mlp":
        net, _ = train_oe_classifier(sp.X_train, sp.y_train, X_out, beta=cfg.beta, n_classes=10, seed=seed)
        inputs, test = X_eval, sp.X_test
    else:
        out = images if images is not None else None if X_out is None else sp.decode(X_out)
        net, _ = train_oe_net(DigitCNN, sp.pixels["train"], sp.y_train, out, beta=cfg.beta, n_classes=10, seed=seed,
                              **CNN_TRAINING)  # fmt: skip
        inputs, test = sp.eval_images(), sp.pixels["test"]
    return {**metrics(y_eval, classifier_score(net, inputs, "msp")),
            "acc": float((predict_classes(net, test) == sp.y_test).mean())}  # fmt: skip


def generated(flow: FlowModel, deep: Any, method: str, p: float, n: int, seed: int) -> np.ndarray:
    """``n`` generated outliers (PCA features) of one generator."""
    if method == "archetype":
        return sample_archetype(deep, n, concentration=p, seed=seed).x
    if method == "nullspace":
        return sample_nullspace(deep, n, concentration=p, seed=seed).x
    return generate(flow, n, method, p, seed=seed).x


def run_seed(digits: np.ndarray, labels: np.ndarray, letters: np.ndarray, seed: int, cfg: Config,
             log: Any = print) -> dict[str, Any]:  # fmt: skip
    """All rows of the table for one seed: ``{row: {"disc": {auc, ap}, "oe": {auc, ap, acc}}}``."""
    t0 = time.perf_counter()
    sp = make_split(digits, labels, letters, seed, cfg)
    X_eval, y_eval = sp.eval_set()
    flow = fit_flow(sp.X_train, seed, cfg)
    rows: dict[str, Any] = {}
    lp = flow.evaluate(X_eval, latent=True)
    rows["flow NLL (reference, no generated outliers)"] = {"flow": metrics(y_eval, -lp["log_prob"])}
    rows["flow latent radius (reference)"] = {"flow": metrics(y_eval, np.linalg.norm(lp["z"], axis=1))}
    log(f"seed {seed}: flow trained ({time.perf_counter() - t0:.0f} s), NLL AUC {rows['flow NLL (reference, no generated outliers)']['flow']['auc']:.3f}")
    deep = None
    if any(m in ("archetype", "nullspace") for _, m, _ in cfg.generators):
        k = cfg.deepaa_k or select_k(sp.X_train[:2000], ks=range(2, 13), seed=derive_seed(seed, "aa"), n_iter=60)[0]
        deep, info = fit_deep_aa(flow, sp.X_train, k=k, seed=derive_seed(seed, "deepaa"))
        rows["_deepaa"] = {"k": int(k), "recon_mse": info["recon_mse"]}

    def both(name: str, X_out: np.ndarray | None, disc: bool = True, images: np.ndarray | None = None) -> None:
        t = time.perf_counter()
        row: dict[str, Any] = {}
        if disc and X_out is not None:
            net, _ = train_discriminator(sp.X_train, X_out, seed=derive_seed(seed, "disc", name))
            row["disc"] = metrics(y_eval, discriminator_score(net, X_eval))
        for kind in cfg.classifiers:
            row[CLASSIFIERS[kind][0]] = digit_classifier(kind, sp, X_out, images, derive_seed(seed, "clf"), cfg)
        rows[name] = row
        d = row.get("disc", {}).get("auc", math.nan)
        oe = "  ".join(f"{CLASSIFIERS[k][1]} AUC {row[CLASSIFIERS[k][0]]['auc']:.3f}" for k in cfg.classifiers)
        log(f"seed {seed}: {name:28s} disc AUC {d:.3f}  {oe} ({time.perf_counter() - t:.0f} s)")

    for name, method, p in cfg.generators:
        both(name, generated(flow, deep, method, p, cfg.n_gen, derive_seed(seed, "gen", name)))
    both("letters (real outliers, oracle)", sp.L_train, images=sp.pixels["letters_train"])
    both("none", None, disc=False)
    rows["_seconds"] = time.perf_counter() - t0
    rows["_context"] = {"flow": flow, "deep": deep, "split": sp}
    return rows


# -- aggregation and tables --------------------------------------------------------------------
def aggregate(per_seed: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, list[float]]]]:
    """``{row: {part: {metric: [value per seed]}}}``."""
    out: dict[str, dict[str, dict[str, list[float]]]] = {}
    for rows in per_seed:
        for name, row in rows.items():
            if name.startswith("_"):
                continue
            for part, vals in row.items():
                for metric, v in vals.items():
                    out.setdefault(name, {}).setdefault(part, {}).setdefault(metric, []).append(float(v))
    return out


def _pm(values: list[float] | None) -> str:
    if not values:
        return "–"
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def _above_none(agg: dict[str, Any], part: str) -> list[str]:
    """Generated-outlier rows whose ``part`` AUC beats the row "none" in every seed."""
    none = agg.get("none", {}).get(part, {}).get("auc", [])
    return [n for n, p in agg.items() if part in p and n not in ("none", "letters (real outliers, oracle)")
            and len(none) and all(a > b for a, b in zip(p[part]["auc"], none))]  # fmt: skip


def markdown(agg: dict[str, Any], seeds: list[int], cfg: Config, seconds: float) -> str:
    clfs = [CLASSIFIERS[k] for k in cfg.classifiers]
    head = "".join(f" {lab} AUC | {lab} AP | {lab.removeprefix('OE ')} ACC |" for _, lab in clfs)
    cnn = (" OE CNN: 3x3 conv 16/32 (stride 2 in the second) + dense 64 on the 28x28 pixels, generated "
           "outliers decoded by the PCA (clipped to [0, 1]); the discriminator stays an MLP on the PCA features."
           if "cnn" in cfg.classifiers else "")  # fmt: skip
    lines = [
        (f"Digits (MNIST test split, 5,000 train / 5,000 test) vs letters (notMNIST, 1,250 test): PCA {cfg.pca}, "
         f"RealNVP flow, {cfg.n_gen} generated outliers per generator, OE beta = {cfg.beta}.{cnn} "
         f"Mean ± std over seeds {seeds} ({seconds / 60:.1f} min)."),
        "",
        f"| outliers | discriminator AUC | discriminator AP |{head}",
        "|---|---|---|" + "---|---|---|" * len(clfs),
    ]
    for name, parts in agg.items():
        if "flow" in parts:
            continue
        d = parts.get("disc", {})
        cells = "".join(f" {_pm(parts.get(part, {}).get(m))} |" for part, _ in clfs for m in ("auc", "ap", "acc"))
        lines.append(f"| {name} | {_pm(d.get('auc'))} | {_pm(d.get('ap'))} |{cells}")
    lines += ["", "| reference (no generated outliers) | AUC | AP |", "|---|---|---|"]
    for name, parts in agg.items():
        if "flow" in parts:
            lines.append(f"| {name} | {_pm(parts['flow']['auc'])} | {_pm(parts['flow']['ap'])} |")
    best = max(((np.mean(p["disc"]["auc"]), n) for n, p in agg.items() if "disc" in p and "oracle" not in n), default=None)
    lines += ["", f"Best generated-outlier discriminator: {best[1]} (mean AUC {best[0]:.3f})." if best else ""]
    lines += [f"{lab}s above 'none' in every seed: {', '.join(_above_none(agg, part)) or 'none'}." for part, lab in clfs]
    return "\n".join(lines) + "\n"


# -- figures -----------------------------------------------------------------------------------
def _save(fig: Any, path: Path) -> None:
    from rareflow.atomic import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def image_grid(rows: list[np.ndarray], row_labels: list[str], path: Path, title: str) -> None:
    """Rows of 28x28 images (values clipped to [0, 1]) with a label per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncol = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(ncol * 0.8 + 1.2, len(rows) * 0.8 + 0.4), squeeze=False)
    for i, (imgs, lab) in enumerate(zip(rows, row_labels)):
        for j in range(ncol):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(imgs):
                ax.imshow(np.clip(imgs[j].reshape(28, 28), 0, 1), cmap="gray", vmin=0, vmax=1)
            else:
                ax.axis("off")
            if j == 0:
                ax.set_ylabel(lab, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def figures(ctx: dict[str, Any], out: Path, seed: int) -> None:
    """Image grids, radii vs chi_d, AA elbow and archetypes for one seed's models."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    flow, deep, sp = ctx["flow"], ctx["deep"], ctx["split"]
    d = flow.config.features
    decode = sp.pca.inverse_transform
    sigmas = np.linspace(1.0, 10.0, 10)
    rows = [decode(generate(flow, 10, "inlier", None, seed=seed).x)]
    labels = ["inliers"]
    for s in sigmas:  # same seed -> same directions: each column follows one direction outwards
        rows.append(decode(generate(flow, 10, "extremal", float(s), seed=seed).x))
        labels.append(f"{s:.1f}σ (r={sigma_radius(d, s):.1f})")
    image_grid(rows, labels, out / "grid_extremal.png", "generated digits: inliers, then latent radius E + pσ of chi_d")
    if deep is not None:
        rows = [decode(sample_archetype(deep, 10, c, seed=seed).x) for c in (0.1, 1.0, 10.0)]
        rows += [decode(sample_nullspace(deep, 10, c, seed=seed).x) for c in (0.1, 1.0)]
        labels = ["Dirichlet c=0.1", "c=1", "c=10", "null space c=0.1", "null space c=1"]
        image_grid(rows, labels, out / "grid_deepaa.png", f"DeepAA samples (k = {deep.k} archetypes)")
    radii = {f"extremal p={p}": generate(flow, 4000, "extremal", p, seed=seed).radius for p in (1.5, 2.5)}
    radii["tail p>2"] = generate(flow, 4000, "tail", 2.0, seed=seed).radius
    radii["Gumbel p=2.5"] = generate(flow, 4000, "gumbel", 2.5, seed=seed).radius
    data_r = np.linalg.norm(flow.evaluate(sp.X_train)["z"], axis=1)
    plot_radii(radii, d, out / "radii.png", data_radii=data_r)
    ks = list(range(2, 17))
    k_best, errors = select_k(sp.X_train[:2000], ks=ks, seed=seed, n_iter=60)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(ks, [errors[k] for k in ks], "o-")
    ax.axvline(k_best, color="r", ls="--", label=f"elbow k = {k_best}")
    ax.set_xlabel("number of archetypes k")
    ax.set_ylabel(r"$\|X - ABX\|^2 / \|X - \bar x\|^2$")
    ax.set_title("classic AA on digit PCA features")
    ax.legend()
    fig.tight_layout()
    _save(fig, out / "aa_elbow.png")
    plt.close(fig)
    aa = {k: archetypal_analysis(sp.X_train[:2000], k, seed=seed) for k in (3, k_best, 14)}
    image_grid([decode(m.Z) for m in aa.values()], [f"k = {k}" for k in aa], out / "archetypes.png",
               "archetypes of the digits (classic AA in PCA space)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "out" / "digits_letters")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--pca", type=int, default=32)
    ap.add_argument("--n-gen", type=int, default=5000)
    ap.add_argument("--quick", action="store_true", help="only two generators (smoke test)")
    ap.add_argument("--no-figures", action="store_true")
    ap.add_argument("--classifier", nargs="+", choices=list(CLASSIFIERS), default=["mlp"],
                    help="digit classifier(s) with outlier exposure: mlp (PCA features), cnn (28x28 pixels)")  # fmt: skip
    args = ap.parse_args(argv)
    if not (args.data / "images").exists():
        print(f"{args.data / 'images'} not found: the image data live in ../shared/data", file=sys.stderr)
        return 2
    cfg = Config(pca=args.pca, n_gen=args.n_gen, generators=list(QUICK if args.quick else GENERATORS),
                 classifiers=list(dict.fromkeys(args.classifier)))  # fmt: skip
    t0 = time.perf_counter()
    digits, labels, letters = load_images(args.data)
    per_seed = []
    for i, seed in enumerate(args.seeds):
        rows = run_seed(digits, labels, letters, seed, cfg)
        ctx = rows.pop("_context")
        if i == 0 and not args.no_figures:
            args.out.mkdir(parents=True, exist_ok=True)
            figures(ctx, args.out, seed)
        per_seed.append(rows)
    seconds = time.perf_counter() - t0
    agg = aggregate(per_seed)
    doc = {"seeds": args.seeds, "config": {k: v for k, v in vars(cfg).items() if k != "generators"},
           "generators": cfg.generators, "seconds": seconds, "per_seed": per_seed,
           "mean": {n: {p: {m: float(np.mean(v)) for m, v in ms.items()} for p, ms in parts.items()} for n, parts in agg.items()},
           "std": {n: {p: {m: float(np.std(v)) for m, v in ms.items()} for p, ms in parts.items()} for n, parts in agg.items()}}  # fmt: skip
    write_text_atomic(args.out / "results.json", json.dumps(doc, indent=2))
    md = markdown(agg, args.seeds, cfg, seconds)
    write_text_atomic(args.out / "results.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
