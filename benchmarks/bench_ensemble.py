"""Fit time of a 5-member flow ensemble: stacked (one loop) vs sequential (our loop) vs sequential zuko.

Every variant trains 5 conditional RealNVPs (8 couplings, MLPs of ``--hidden`` widths, by default
flow-classifier's, ELU, class one-hot as context; the flow-classifier defaults) for the same fixed number of epochs (no early stopping,
no validation, so only the fitting is timed) on the same rows, batch size and threads:

* ``stacked, one pass``: :func:`rareflow.flows.ensemble.train_ensemble` with
  :func:`~rareflow.flows.ensemble.class_context_nll_loss` (each row under its own class only);
* ``stacked, one pass, through vmap``: the same loss without its ``stacked`` form, so the loop
  evaluates it under ``torch.vmap`` (what the stacked form, one ``baddbmm`` per layer, buys);
* ``stacked, one pass, 4x batch, sqrt-scaled lr``: the same with ``lr_reference_batch`` (speed
  only; whether the validation NLL allows it is for the flow-classifier study);
* ``stacked, two passes``: the same loop with today's ``class_nll_loss`` on ``ClassFlows([m])``
  (both classes evaluated per row): isolates what stacking buys from what the loss buys;
* ``sequential (our loop), two passes``: ``rareflow.training.train`` once per member, today's loss;
* ``sequential (our loop), one pass``: the same with the one-pass loss;
* ``today's flow-classifier loop``: one ``train`` of ``ClassFlows`` of the 5 members (shared
  batches, loss on the member mean) — what ``flow-classifier`` runs before this change;
* ``sequential zuko``: 5 plain zuko training loops (``zuko.flows.RealNVP`` of the same size, Adam,
  ``-flow(c).log_prob(x).mean()``, standardised inputs).

Data: MAGIC (``magic04.data``, 10 Hillas features, gamma = 0 / hadron = 1) when found, else
synthetic 10-D two-class Gaussians; ``--rows`` rows (default 6000). Prints a Markdown table with
each variant's time and its ratio to the stacked one-pass ensemble; ``--results`` also writes the
section "## Flow ensemble (issue 18)" of ``benchmarks/RESULTS.md``.

Usage: ``python benchmarks/bench_ensemble.py [--epochs 5] [--rows 6000] [--threads 1] [--hidden 128,128] [--device cuda] [--variants "stacked, one pass"] [--profile] [--results]``
(smoke test: ``--epochs 1 --rows 1000``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _common import REPO, publish

MEMBERS, TRANSFORMS, ACT = 5, 8, "elu"
HIDDEN: tuple[int, ...] = ()  # set by main(): --hidden, else flow-classifier's default
SECTION = "## Flow ensemble (issue 18)"
MAGIC = [REPO.parent / "shared/data/magic/magic04.data", REPO / "shared/data/magic/magic04.data",
         Path("/work/shared/data/magic/magic04.data")]  # fmt: skip


def default_hidden() -> tuple[int, ...]:
    """flow-classifier's default MLP widths (read from its signature, so the benchmark follows it)."""
    import inspect

    from rareflow.detectors.flow_classifier import FlowClassifier

    return tuple(inspect.signature(FlowClassifier.__init__).parameters["hidden"].default)


def load_data(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """``(X, y, source)``: ``rows`` MAGIC rows (shuffled) or synthetic 10-D Gaussians."""
    r = np.random.default_rng(seed)
    for path in MAGIC:
        if path.exists():
            raw = np.genfromtxt(path, delimiter=",", dtype=str)
            X, y = raw[:, :10].astype(np.float64), (raw[:, 10] == "h").astype(np.float32)
            idx = r.permutation(len(X))[:rows]
            return X[idx], y[idx], f"MAGIC {path.name} ({len(idx)} rows)"
    y = (r.random(rows) < 0.35).astype(np.float32)
    X = r.normal(0, 1, (rows, 10)) + 0.7 * y[:, None]
    return X, y, f"synthetic 10-D Gaussians ({rows} rows)"


def rareflow_members(X: np.ndarray) -> list:
    from rareflow.flows import FlowConfig, FlowModel, Preprocessor

    pre = Preprocessor.fit(X)
    cfg = FlowConfig("realnvp", features=X.shape[1], context=2, transforms=TRANSFORMS, hidden=HIDDEN, activation=ACT)
    return [FlowModel(cfg, pre, seed=k) for k in range(MEMBERS)]


def variants(X: np.ndarray, y: np.ndarray, epochs: int, batch: int, device: str = "cpu") -> dict[str, Callable[[], None]]:
    from rareflow.detectors.flow_classifier import ClassFlows
    from rareflow.training import Batch, train
    from rareflow.flows.ensemble import class_context_nll_loss, train_ensemble
    from rareflow.flows.selfsup import class_nll_loss

    data = Batch(torch.as_tensor(X, dtype=torch.float32), label=torch.as_tensor(y))
    kw = dict(epochs=epochs, batch_size=batch, lr=1e-3, weight_decay=1e-5, patience=None, progress=False, device=device)
    pair = lambda m: ClassFlows([m], conditional=True)  # noqa: E731

    def seq(loss: Callable, wrap: Callable) -> None:
        for k, m in enumerate(rareflow_members(X)):
            train(wrap(m), loss, data, seed=k, **kw)

    return {
        "stacked, one pass": lambda: train_ensemble(rareflow_members(X), class_context_nll_loss(), data, **kw),
        "stacked, one pass, through vmap": lambda: train_ensemble(rareflow_members(X), without_stacked_form(), data, **kw),
        "stacked, one pass, 4x batch, sqrt-scaled lr": lambda: train_ensemble(
            rareflow_members(X), class_context_nll_loss(), data, **{**kw, "batch_size": 4 * batch}, lr_reference_batch=batch
        ),
        "stacked, two passes": lambda: train_ensemble(rareflow_members(X), class_nll_loss(), data, wrap=pair, **kw),
        "sequential (our loop), two passes": lambda: seq(class_nll_loss(), pair),
        "sequential (our loop), one pass": lambda: seq(class_context_nll_loss(), lambda m: m),
        "today's flow-classifier loop (5 members, one train)": lambda: train(
            ClassFlows(rareflow_members(X), conditional=True), class_nll_loss(), data, seed=0, **kw
        ),
        "sequential zuko": lambda: zuko_sequential(X, y, epochs, batch, device),
    }


def without_stacked_form() -> Callable:
    """``class_context_nll_loss()`` as a plain function (no ``stacked`` attribute): trained under vmap."""
    from rareflow.flows.ensemble import class_context_nll_loss

    loss = class_context_nll_loss()
    return lambda model, batch: loss(model, batch)


def zuko_sequential(X: np.ndarray, y: np.ndarray, epochs: int, batch: int, device: str = "cpu") -> None:
    """5 plain zuko loops: the peer a user would write by hand."""
    import zuko

    x = torch.as_tensor((X - X.mean(0)) / X.std(0), dtype=torch.float32, device=device)
    c = torch.nn.functional.one_hot(torch.as_tensor(y, dtype=torch.long), 2).float().to(device)
    for k in range(MEMBERS):
        torch.manual_seed(k)
        flow = zuko.flows.RealNVP(x.shape[1], context=2, transforms=TRANSFORMS, hidden_features=HIDDEN,
                                  activation=torch.nn.ELU).to(device)  # fmt: skip
        opt = torch.optim.Adam(flow.parameters(), lr=1e-3)
        for _ in range(epochs):
            perm = torch.randperm(len(x), device=device)
            for s in range(len(x) // batch):
                idx = perm[s * batch : (s + 1) * batch]
                loss = -flow(c[idx]).log_prob(x[idx]).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()


def profile_stacked(fit: Callable[[], None]) -> None:
    """Print the top operators (self CPU time) of one stacked fit and the batched matmuls' share."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fit()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    mm = sum(e.self_cpu_time_total for e in events if e.key in ("aten::bmm", "aten::baddbmm", "aten::mm", "aten::addmm"))
    ops = sum(e.count for e in events if e.key.startswith("aten::"))
    print(events.table(sort_by="self_cpu_time_total", row_limit=12))
    print(f"stacked, one pass: matmuls {100 * mm / total:.1f} % of the self CPU time; {ops:,} aten operator calls, nested ones included")


def main() -> None:
    """Time every variant; print (and optionally write) the Markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--rows", type=int, default=6000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1, help="rounds; each round runs every variant once (interleaved)")
    ap.add_argument("--hidden", default=None, help="MLP widths, e.g. 128,128 (default: flow-classifier's)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (every variant on it)")
    ap.add_argument("--results", action="store_true", help="write the section of benchmarks/RESULTS.md")
    ap.add_argument("--variants", default=None, help="only these variants (names separated by ';'), e.g. 'stacked, one pass'")
    ap.add_argument("--profile", action="store_true", help="also print torch.profiler's top operators of one stacked fit")
    args = ap.parse_args()
    global HIDDEN
    HIDDEN = tuple(int(h) for h in args.hidden.split(",")) if args.hidden else default_hidden()
    torch.set_num_threads(args.threads)
    X, y, source = load_data(args.rows)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    chosen = None if args.variants is None else [v.strip() for v in args.variants.split(";")]

    def pick(all_: dict[str, Callable[[], None]]) -> dict[str, Callable[[], None]]:
        unknown = [v for v in chosen or [] if v not in all_]
        if unknown:
            raise SystemExit(f"--variants: unknown {unknown[0]!r}; choose from {'; '.join(all_)}")
        return all_ if chosen is None else {k: all_[k] for k in chosen}

    for fit in pick(variants(X[: 2 * args.batch_size], y[: 2 * args.batch_size], 1, args.batch_size, args.device)).values():
        fit()  # warm-up: first-call costs (vmap, allocator) are not fitting time
    times: dict[str, float] = {}
    for _ in range(args.repeats):  # interleaved rounds: a change of load hits every variant alike
        for name, fit in pick(variants(X, y, args.epochs, args.batch_size, args.device)).items():
            sync()
            t0 = time.perf_counter()
            fit()
            sync()
            times[name] = min(times.get(name, np.inf), time.perf_counter() - t0)
    if args.profile:
        profile_stacked(variants(X, y, args.epochs, args.batch_size, args.device)["stacked, one pass"])
    ref = times.get("stacked, one pass", next(iter(times.values())))
    rows = [f"| {n} | {t:.2f} | {MEMBERS * args.epochs * args.rows / t:,.0f} | {t / ref:.2f}x |" for n, t in times.items()]
    publish(SECTION, [
        f"{MEMBERS} conditional RealNVPs ({TRANSFORMS} couplings, {HIDDEN}, {ACT}), {args.epochs} epochs, batch "
        f"{args.batch_size}, {args.threads} thread(s), device {args.device}, best of {args.repeats}; data: {source}.", "",
        "| variant | fit s | member-samples/s | time / stacked one-pass |", "|---|---:|---:|---:|", *rows,
    ], ("torch", "zuko"), write=args.results)  # fmt: skip


if __name__ == "__main__":
    main()
