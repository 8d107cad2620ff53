"""Digits in-distribution, letters as real outliers: training with flow-generated outliers (Bungert 2021).

Usage (from the repository root, ~5-8 min on 2 CPU cores for 3 seeds)::

    OMP_NUM_THREADS=1 python examples/digits_vs_letters.py --out out/digits_letters --seeds 0 1 2

Data (never copied into the repository): the MNIST test split and notMNIST letters A-J from
``../shared/data/images`` (``--data`` to point elsewhere). Per seed:

1. the 10,000 digits are split 50/50 into train/test; letters into 5,000 "oracle" training
   letters and 1,250 test letters (test: 5,000 digits + 1,250 letters, letter fraction 0.2);
2. PCA (``--pca`` components, default 32) of the pixels in [0, 1], fitted on the digit TRAIN split;
3. a RealNVP flow on the PCA features of the digit train split;
4. for each generator (p-sigma shells, chi tail, Gumbel, DeepAA Dirichlet / null-space) 5,000
   generated outliers; a discriminator (digits vs generated) and a 10-class digit classifier with
   outlier exposure (beta = 0.5) are trained on the PCA features; both are scored on the test set
   (AUC / AP of letters vs digits) — the rows of the seed's tables;
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

from rareflow.atomic import write_text_atomic
from rareflow.flows import FlowConfig, FlowModel, Preprocessor, nll_loss
from rareflow.training import Batch, split_indices, to_tensor, train
from rareflow.flows.losses import trimmed_nll_loss
from rareflow.outliers.archetypes import archetypal_analysis, select_k
from rareflow.outliers.deep_aa import fit_deep_aa, sample_archetype, sample_nullspace
from rareflow.io.idx import load_idx_pair
from rareflow.outliers.latent import generate, plot_radii, sigma_radius
from rareflow.outliers.training import (
    classifier_score,
    discriminator_score,
    predict_classes,
    train_discriminator,
    train_oe_classifier,
)
from rareflow.seeding import derive_seed

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


@dataclass
class Split:
    """PCA features of one seed's split, and the fitted PCA."""

    pca: PCA
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    L_train: np.ndarray
    L_test: np.ndarray

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
    return Split(pca, f(digits[tr]), labels[tr], f(digits[te]), labels[te], f(letters[ltr]), f(letters[lte]))


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

    def both(name: str, X_out: np.ndarray | None, disc: bool = True) -> None:
        t = time.perf_counter()
        row: dict[str, Any] = {}
        if disc and X_out is not None:
            net, _ = train_discriminator(sp.X_train, X_out, seed=derive_seed(seed, "disc", name))
            row["disc"] = metrics(y_eval, discriminator_score(net, X_eval))
        net, _ = train_oe_classifier(sp.X_train, sp.y_train, X_out, beta=cfg.beta, n_classes=10,
                                     seed=derive_seed(seed, "clf"))  # fmt: skip
        row["oe"] = {**metrics(y_eval, classifier_score(net, X_eval, "msp")),
                     "acc": float((predict_classes(net, sp.X_test) == sp.y_test).mean())}  # fmt: skip
        rows[name] = row
        d = row.get("disc", {}).get("auc", math.nan)
        log(f"seed {seed}: {name:28s} disc AUC {d:.3f}  OE AUC {row['oe']['auc']:.3f} ({time.perf_counter() - t:.0f} s)")

    for name, method, p in cfg.generators:
        both(name, generated(flow, deep, method, p, cfg.n_gen, derive_seed(seed, "gen", name)))
    both("letters (real outliers, oracle)", sp.L_train)
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


def markdown(agg: dict[str, Any], seeds: list[int], cfg: Config, seconds: float) -> str:
    lines = [
        f"Digits (MNIST test split, 5,000 train / 5,000 test) vs letters (notMNIST, 1,250 test): PCA {cfg.pca}, "
        f"RealNVP flow, {cfg.n_gen} generated outliers per generator, OE beta = {cfg.beta}. "
        f"Mean ± std over seeds {seeds} ({seconds / 60:.1f} min).",
        "",
        "| outliers | discriminator AUC | discriminator AP | OE classifier AUC | OE classifier AP | classifier ACC |",
        "|---|---|---|---|---|---|",
    ]
    for name, parts in agg.items():
        if "flow" in parts:
            continue
        d, o = parts.get("disc", {}), parts.get("oe", {})
        lines.append(f"| {name} | {_pm(d.get('auc'))} | {_pm(d.get('ap'))} | {_pm(o.get('auc'))} | "
                     f"{_pm(o.get('ap'))} | {_pm(o.get('acc'))} |")  # fmt: skip
    lines += ["", "| reference (no generated outliers) | AUC | AP |", "|---|---|---|"]
    for name, parts in agg.items():
        if "flow" in parts:
            lines.append(f"| {name} | {_pm(parts['flow']['auc'])} | {_pm(parts['flow']['ap'])} |")
    none = agg.get("none", {}).get("oe", {}).get("auc", [])
    better = [n for n, p in agg.items() if "oe" in p and n not in ("none", "letters (real outliers, oracle)")
              and len(none) and all(a > b for a, b in zip(p["oe"]["auc"], none))]  # fmt: skip
    best = max(((np.mean(p["disc"]["auc"]), n) for n, p in agg.items() if "disc" in p and "oracle" not in n), default=None)
    lines += ["", f"Best generated-outlier discriminator: {best[1]} (mean AUC {best[0]:.3f})." if best else "",
              f"OE classifiers above 'none' in every seed: {', '.join(better) or 'none'}."]  # fmt: skip
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
    args = ap.parse_args(argv)
    if not (args.data / "images").exists():
        print(f"{args.data / 'images'} not found: the image data live in ../shared/data", file=sys.stderr)
        return 2
    cfg = Config(pca=args.pca, n_gen=args.n_gen, generators=list(QUICK if args.quick else GENERATORS))
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
