"""Flow throughput: rareflow vs zuko, nflows and normflows on the same architecture, data and threads.

One run measures, on 10-D standard-normal data (2^17 rows):

* training samples/s: a fixed number of Adam steps (batch 1024) of a RealNVP with 8 affine
  couplings whose conditioners are MLPs 5 -> 128 -> 128 -> 10 (ReLU), for
  - ``rareflow``: :class:`rareflow.flows.FlowModel` (fused RealNVP path over zuko's parameters),
  - ``rareflow (zuko path)``: the same model with ``fused=False``,
  - ``zuko``: ``zuko.flows.RealNVP(10, transforms=8, hidden_features=(128, 128))``,
  - ``nflows``: ``AffineCouplingTransform`` x 8 with the same MLPs and a standard-normal base;
  - ``normflows``: ``AffineCouplingBlock`` x 8 (``MLP([5, 128, 128, 10])``, ReLU) alternated with
    ``Permute(mode="swap")`` and a fixed ``DiagGaussian`` base;
  peers are optional (``pip install nflows normflows`` by hand; they are not rareflow
  dependencies): one that is not installed is skipped with a note; the parameter column shows the
  architectures match;
  plus rareflow's full ``train()`` loop (clipping, shuffling, loss sync, validation);
* scoring events/s: log-density of all rows in inference mode at several batch sizes (the best
  batch of each library is reported); rareflow's number is ``FlowModel.evaluate`` — numpy in,
  numpy out, preprocessing included;
* the sgemm ceiling: GFLOP/s of a 4096^3 float32 matmul on the same threads, and the
  architecture's FLOPs per event (2 x multiply-adds of the coupling MLPs), so
  scoring efficiency = events/s x FLOPs/event / ceiling; and the conditioner GEMMs alone (the
  fused linear calls of rareflow's scoring, nothing else) at its best batch: a ceiling, up to
  run-to-run noise, for any implementation on these kernels;
* optionally (``--stream-rows``), scoring a Parquet file of that many rows streamed by row group
  through the ``flow`` detector in a subprocess, with its peak RSS (bounded memory).

Ratios "rareflow / fastest peer" are printed for training and scoring, against the goals
(>= 1.0x the fastest peer, scoring >= 70 % of the FLOP bound, issue 18) and training is given as a
fraction of its own bound (3x the forward FLOPs per sample: forward, input and weight gradients). ``--profile`` adds the torch
profiler's top operators of one training step and one scoring batch, for rareflow and the fastest
peer (what to look at when a goal is missed).

Writes/replaces the section "## Flows (issues 4, 8)" of ``benchmarks/RESULTS.md``.

Usage: ``python benchmarks/bench_flows.py [--steps 150] [--repeats 3] [--stream-rows 10000000] [--profile] [--device cuda]``
(``--device cuda``: every model, the data and the ceiling on the GPU.)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _common import command_line, machine_line
from torch import nn

D, TRANSFORMS, HIDDEN = 10, 8, (128, 128)
ROWS = int(os.environ.get("RAREFLOW_BENCH_ROWS", 2**17))
TRAIN_BATCH = 1024
SCORE_BATCHES = (1024, 2048, 4096, 16384, 65536)
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Flows (issues 4, 8)"
OLD_SECTION = "## Flows (issue 4)"
PEERS = ("zuko", "nflows", "normflows")


# -- models -------------------------------------------------------------------------------------
def flops_per_event() -> int:
    """2 x multiply-adds of the 8 coupling MLPs (5 -> 128 -> 128 -> 10); elementwise ops ignored."""
    half = D // 2
    sizes = (half, *HIDDEN, 2 * (D - half))
    return TRANSFORMS * sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:]))


def make_rareflow(fused: bool = True) -> nn.Module:
    from rareflow.flows import FlowConfig, FlowModel, Preprocessor

    cfg = FlowConfig("realnvp", features=D, transforms=TRANSFORMS, hidden=HIDDEN, activation="relu")
    return FlowModel(cfg, Preprocessor(D), seed=0, fused=fused)


def make_zuko() -> nn.Module:
    import zuko

    torch.manual_seed(0)
    return zuko.flows.RealNVP(D, transforms=TRANSFORMS, hidden_features=HIDDEN)


def make_nflows() -> nn.Module | None:
    try:
        from nflows.distributions.normal import StandardNormal
        from nflows.flows.base import Flow
        from nflows.transforms.base import CompositeTransform
        from nflows.transforms.coupling import AffineCouplingTransform
    except ImportError:
        return None

    class Net(nn.Sequential):
        def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
            return super().forward(x)

    def net(n_in: int, n_out: int) -> nn.Module:
        return Net(
            nn.Linear(n_in, HIDDEN[0]), nn.ReLU(), nn.Linear(HIDDEN[0], HIDDEN[1]), nn.ReLU(), nn.Linear(HIDDEN[1], n_out)
        )

    torch.manual_seed(0)
    layers = []
    for i in range(TRANSFORMS):
        mask = torch.arange(D) % 2 == i % 2  # nflows: >0 = transformed
        layers.append(AffineCouplingTransform(mask.int() * 2 - 1, net))
    return Flow(CompositeTransform(layers), StandardNormal([D]))


def make_normflows() -> nn.Module | None:
    try:
        import normflows as nf
    except ImportError:
        return None

    torch.manual_seed(0)
    flows: list[nn.Module] = []
    for _ in range(TRANSFORMS):
        # MLP with ReLU (leaky=0), output (shift, scale) interleaved for the 5 transformed features
        flows.append(nf.flows.AffineCouplingBlock(nf.nets.MLP([D // 2, *HIDDEN, D], leaky=0.0), scale_map="exp"))
        flows.append(nf.flows.Permute(D, mode="swap"))
    return nf.NormalizingFlow(nf.distributions.DiagGaussian(D, trainable=False), flows)


def log_prob_fn(name: str, model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    if name.startswith("rareflow"):
        return model.log_prob
    if name == "zuko":
        return lambda x: model().log_prob(x)
    return model.log_prob


# -- measurements -------------------------------------------------------------------------------
def sgemm_gflops(n: int = 4096, reps: int = 5, device: str = "cpu") -> float:
    """The FLOP ceiling: the faster of torch's ``a @ b`` and (CPU) oneDNN's linear on a n^3 float32
    product (rareflow scores through oneDNN, whose GEMM beats MKL's on some CPUs, e.g. AMD)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    kernels = [lambda: a @ b]
    if device == "cpu" and hasattr(torch.ops.mkldnn, "_linear_pointwise") and torch.backends.mkldnn.is_available():
        kernels.append(lambda: torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], ""))
    best = 0.0
    with torch.inference_mode():
        for k in kernels:
            k()
            _sync(device)
            t = time.perf_counter()
            for _ in range(reps):
                k()
            _sync(device)
            best = max(best, 2 * n**3 * reps / (time.perf_counter() - t) / 1e9)
    return best


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def train_rate(fn: Callable[[torch.Tensor], torch.Tensor], model: nn.Module, x: torch.Tensor, steps: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    t = 0.0
    for i in range(steps + 5):
        if i == 5:
            t = time.perf_counter()
        j = (i * TRAIN_BATCH) % (len(x) - TRAIN_BATCH)
        loss = -fn(x[j : j + TRAIN_BATCH]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(str(x.device))
    return steps * TRAIN_BATCH / (time.perf_counter() - t)


def score_rate(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch: int) -> float:
    with torch.inference_mode():
        fn(x[:batch])
        t = time.perf_counter()
        for i in range(0, len(x), batch):
            fn(x[i : i + batch])
        _sync(str(x.device))
        return len(x) / (time.perf_counter() - t)


def evaluate_rate(model: nn.Module, X: np.ndarray, batch: int) -> float:
    model.evaluate(X[:batch], batch_size=batch, latent=False)
    t = time.perf_counter()
    model.evaluate(X, batch_size=batch, latent=False)
    return len(X) / (time.perf_counter() - t)


def train_loop_rate(x: torch.Tensor, epochs: int = 2, device: str = "cpu") -> float:
    from rareflow.flows import nll_loss
    from rareflow.training import Batch, train

    model = make_rareflow()
    h = train(model, nll_loss, Batch(x), Batch(x[:8192]), epochs=epochs, batch_size=TRAIN_BATCH, lr=1e-4, patience=0,
              progress=False, device=device)  # fmt: skip
    return h["samples_per_second"]


def stream_parquet(rows: int) -> dict[str, float]:
    """Score a ``rows``-row Parquet file by row groups in a fresh process; its time and peak RSS."""
    code = r"""
import json, resource, sys, time
import numpy as np, pandas as pd, pyarrow as pa, pyarrow.parquet as pq
from rareflow.detectors import get_detector
rows, path = int(sys.argv[1]), sys.argv[2]
cols = [f"f{j}" for j in range(10)]
r = np.random.default_rng(0)
det = get_detector("flow", epochs=1, progress=False, activation="relu").fit(pd.DataFrame(r.normal(size=(20000, 10)), columns=cols))
rss_fit = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
with pq.ParquetWriter(path, pa.schema([(c, pa.float32()) for c in cols])) as w:
    for start in range(0, rows, 1_000_000):
        n = min(1_000_000, rows - start)
        w.write_table(pa.table({c: r.normal(size=n).astype(np.float32) for c in cols}), row_group_size=250_000)
rss_write = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
f = pq.ParquetFile(path, pre_buffer=False)  # pre_buffer=True caches every row group read so far
t = time.perf_counter(); n = 0; s = 0.0
for scores in det.decision_function_batches(f.iter_batches(batch_size=250_000)):
    n += len(scores); s += float(scores.sum())
dt = time.perf_counter() - t
print(json.dumps({"rows": n, "seconds": dt, "events_per_s": n / dt, "rss_after_fit_mb": rss_fit,
                  "rss_after_write_mb": rss_write, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "row_groups": f.num_row_groups}))
"""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, "-c", code, str(rows), str(Path(tmp) / "big.parquet")],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- report -------------------------------------------------------------------------------------
def write_section(text: str) -> None:
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    old = old.replace(OLD_SECTION + "\n", SECTION + "\n")  # the section was renamed when normflows joined
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    block = f"{SECTION}\n\n{text.strip()}\n\n"
    new = pattern.sub(lambda _: block, old) if pattern.search(old) else old.rstrip() + "\n\n" + block
    RESULTS.write_text(new)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150, help="training steps per measurement")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats; the best is kept")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--stream-rows", type=int, default=0, help="also stream-score a Parquet file of N rows")
    ap.add_argument("--profile", action="store_true", help="add torch.profiler top operators to the report")
    ap.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    ap.add_argument("--device", default="cpu", help="cpu or cuda: the sgemm ceiling and the oneDNN on/off scoring rows")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    load0 = os.getloadavg()[0]
    torch.manual_seed(0)
    x = torch.randn(ROWS, D)
    X = x.double().numpy()
    x = x.to(args.device)

    models: dict[str, nn.Module] = {"rareflow": make_rareflow(), "rareflow (zuko path)": make_rareflow(False), "zuko": make_zuko()}
    skipped = []
    for peer, make in (("nflows", make_nflows), ("normflows", make_normflows)):
        m = make()
        if m is None:
            skipped.append(peer)
        else:
            models[peer] = m
    models = {k: m.to(args.device) for k, m in models.items()}
    n_params = {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()}
    train_best: dict[str, float] = {k: 0.0 for k in models}
    score_best: dict[str, tuple[float, int]] = {k: (0.0, 0) for k in models}
    ceiling, loop_rate, gemm_rate = 0.0, 0.0, 0.0
    for rep in range(args.repeats):
        ceiling = max(ceiling, sgemm_gflops(device=args.device))
        for name, model in models.items():
            fn = log_prob_fn(name, model)
            model.train()
            train_best[name] = max(train_best[name], train_rate(fn, model, x, args.steps))
            model.eval()
            for b in SCORE_BATCHES:
                if name.startswith("rareflow"):
                    rate = evaluate_rate(model, X, b)
                else:
                    rate = score_rate(fn, x, b)
                if rate > score_best[name][0]:
                    score_best[name] = (rate, b)
        loop_rate = max(loop_rate, train_loop_rate(x, device=args.device))
        gemm_rate = max(gemm_rate, gemm_chain_rate(models["rareflow"], score_best["rareflow"][1], args.device))
        print(f"repeat {rep + 1}/{args.repeats} done", file=sys.stderr)
    load1 = os.getloadavg()[0]
    fpe = flops_per_event()

    # sanity: same weights -> same log-density (fused path vs zuko)
    with torch.inference_mode():
        ref = make_rareflow(False).to(args.device)
        ref.load_state_dict(models["rareflow"].state_dict())
        diff = float((models["rareflow"].log_prob(x[:4096]) - ref.log_prob(x[:4096])).abs().max())

    peers = [k for k in models if k in PEERS]
    fast_train = max(peers, key=lambda k: train_best[k])
    fast_score = max(peers, key=lambda k: score_best[k][0])
    rows = []
    for name in models:
        rate, b = score_best[name]
        eff = rate * fpe / (ceiling * 1e9)
        rows.append(
            f"| {name} | {n_params[name]:,} | {train_best[name]:,.0f} | {train_best[name] / train_best[fast_train]:.2f}x "
            f"| {rate:,.0f} | {rate / score_best[fast_score][0]:.2f}x | {b} | {100 * eff:.1f}% |"
        )
    table = "\n".join(
        [
            "| implementation | parameters | training samples/s | training / fastest peer | scoring events/s "
            "| scoring / fastest peer | best scoring batch | scoring / FLOP bound |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
        ]
    )
    t_bound = train_best["rareflow"] * 3 * fpe / (ceiling * 1e9)  # forward + 2x backward FLOPs
    onednn = onednn_gain(models["rareflow"], X, score_best["rareflow"][1], args.repeats)
    r_train = train_best["rareflow"] / train_best[fast_train]
    r_score = score_best["rareflow"][0] / score_best[fast_score][0]
    e_score = score_best["rareflow"][0] * fpe / (ceiling * 1e9)

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    goals = (
        f"Goals: training >= 1.0x the fastest peer ({fast_train}): **{r_train:.2f}x**, {verdict(r_train >= 1.0)}; "
        f"scoring >= 1.0x the fastest peer ({fast_score}): **{r_score:.2f}x**, {verdict(r_score >= 1.0)}; "
        f"scoring >= 70% of the FLOP bound: **{100 * e_score:.1f}%**, {verdict(e_score >= 0.70)}; "
        f"training at **{100 * t_bound:.1f}%** of its own bound (3x the forward FLOPs per sample). "
        f"Scoring with the oneDNN fused linear vs `F.linear` (same model, batch {score_best['rareflow'][1]}, "
        f"interleaved, best of {args.repeats}): {onednn}. "
        f"The conditioner GEMMs alone (the same {3 * TRANSFORMS} fused linear calls per batch of "
        f"{score_best['rareflow'][1]}, same weights, nothing else; best of {args.repeats}): "
        f"{gemm_rate:,.0f} events/s = **{100 * gemm_rate * fpe / (ceiling * 1e9):.1f}%** of the FLOP bound; "
        f"rareflow's scoring reaches {100 * score_best['rareflow'][0] / gemm_rate:.1f}% of that GEMM-only rate."
    )
    if skipped:
        goals += f" Not installed, so not measured: {', '.join(skipped)} (`pip install {' '.join(skipped)}`)."
    prof = ""
    if args.profile:
        prof = "\n" + profile_block(models, x, X, [n for n in ("rareflow", fast_train, fast_score) if n in models]) + "\n"
    stream = ""
    if args.stream_rows:
        load_s = os.getloadavg()[0]
        st = stream_parquet(args.stream_rows)
        load_e = os.getloadavg()[0]
        stream = (
            f"\nStreaming: {st['rows']:,} rows of a Parquet file ({st['row_groups']} row groups of 250k) scored "
            f"through `FlowDetector.decision_function_batches` in {st['seconds']:.1f} s "
            f"({st['events_per_s']:,.0f} events/s incl. Parquet decode and pandas conversion, one shot, load average "
            f"{load_s:.2f} / {load_e:.2f}); peak RSS {st['peak_rss_mb']:.0f} MB "
            f"(after fit {st['rss_after_fit_mb']:.0f} MB, after writing the file {st['rss_after_write_mb']:.0f} MB): "
            "memory is bounded by one row group, not by the table (with `pq.ParquetFile(path, "
            "pre_buffer=False)`; pyarrow's default `pre_buffer=True` keeps every row group read so far and "
            "RSS grows by ~60 MB per million rows: 1225 MB for 1e7 rows).\n"
        )
        print(stream)
    text = f"""
Command: `{command_line()}`

{machine_line("torch", "zuko", "nflows", "normflows", load_before=f"{load0:.2f}")}
{threads} torch threads; load average (1 min) {load0:.2f} before / {load1:.2f} after: each number is the best of
{args.repeats} interleaved repeats (all implementations measured in turn inside each repeat).

Architecture: RealNVP, {TRANSFORMS} affine couplings, conditioner MLP {D // 2} -> {HIDDEN[0]} -> {HIDDEN[1]} -> {D} (ReLU),
10-D standard-normal data, {ROWS:,} rows. FLOPs per event (2 x multiply-adds of the MLPs): {fpe:,}.
sgemm ceiling (4096^3 float32 matmul, same threads): **{ceiling:.0f} GFLOP/s**; the FLOP bound is
{ceiling * 1e9 / fpe:,.0f} events/s. Training: {args.steps} Adam steps of batch {TRAIN_BATCH} (forward + backward + step).

{table}

{goals}

rareflow's full `train()` loop (shuffling, gradient clipping, per-step NaN check, cosine schedule,
validation each epoch) on the same model: {loop_rate:,.0f} samples/s.
Fused path vs zuko on the same weights: max |delta log p| = {diff:.2e} over 4096 rows.
{stream}{prof}
Notes:
- `rareflow` scoring is `FlowModel.evaluate` (float64 numpy in, numpy out, preprocessing
  included); zuko / nflows / normflows get float32 tensors and no preprocessing.
- Architectures: the same 8 couplings of 5 -> 128 -> 128 -> 10 MLPs in every library (equal
  parameter counts above); nflows and normflows alternate the halves by masks / a swap
  permutation (no parameters), zuko and rareflow by their coupling masks.
- What helped: the fused RealNVP path (halves kept as two contiguous tensors that swap roles,
  `F.linear` + in-place activation, one `addcmul` per coupling, no per-call Transform objects, no
  scatter back into one tensor unless z is asked for) — it also speeds up training, since the
  backward graph is smaller; AdamW with `foreach=True` in `train()`; scoring batches of 2-4k rows,
  which keep the 128-wide activations in cache (16k-64k rows are *slower* on this CPU: the
  elementwise ops become memory-bound; default `score_batch_size` 2048).
- Tried and not used: `torch.compile` (inductor, CPU) of an earlier fused variant: 0.74-1.04x of
  eager at batches 512-2048 after 25-40 s of compilation.
- `--threads 1` (as `run_all.py` runs it): on this shared 2-core machine a 2-thread OpenMP pool
  stalls at every barrier when another job takes a core (10-20x slowdowns of every library were
  seen with 2 threads under load 4); all implementations and the sgemm bound use the same threads.
- `inference_mode` is used by all scoring paths. Other jobs shared the 2 cores during these runs,
  so absolute numbers move by +-30 % between runs; the comparison is fair only because the
  implementations are measured interleaved, several times, best kept.
"""
    print(table)
    print(text)
    if not args.no_write:
        write_section(text)
        print(f"wrote {RESULTS}", file=sys.stderr)


def gemm_chain_rate(model: nn.Module, batch: int, device: str = "cpu") -> float:
    """Events/s of the conditioner GEMMs alone: the fused linear calls that ``FlowModel.evaluate``
    makes per scoring batch (same weights, batch and kernel), on a fixed input, without the coupling
    arithmetic, preprocessing or float64 conversion: a ceiling (up to run-to-run noise) for any
    implementation on these kernels at this batch size."""
    from rareflow.flows.model import fused_linear

    fast = model._fast
    xa = torch.randn(batch, D // 2, device=device)
    n_batches = max(1, ROWS // batch)
    with torch.inference_mode():
        for i in range(n_batches + 1):
            if i == 1:
                _sync(device)
                t = time.perf_counter()
            for lin in fast.linears:
                h = xa
                for layer in lin[:-1]:
                    h = fused_linear(h, layer.weight, layer.bias, fast.act, True)
                fused_linear(h, lin[-1].weight, lin[-1].bias, None, True)
        _sync(device)
    return n_batches * batch / (time.perf_counter() - t)


def onednn_gain(model: nn.Module, X: np.ndarray, batch: int, repeats: int) -> str:
    """Events/s of ``FlowModel.evaluate`` with and without the oneDNN fused linear (flows/model.py)."""
    from rareflow.flows import model as flow_model

    if not flow_model._FUSED_LINEAR or flow_model._FUSED_LINEAR[0] is None:
        return "oneDNN fused linear not available in this torch build"
    op, rates = flow_model._FUSED_LINEAR[0], {"oneDNN": 0.0, "F.linear": 0.0}
    try:
        for _ in range(repeats):
            for name in rates:
                flow_model._FUSED_LINEAR[0] = op if name == "oneDNN" else None
                rates[name] = max(rates[name], evaluate_rate(model, X, batch))
    finally:
        flow_model._FUSED_LINEAR[0] = op
    return f"{rates['oneDNN']:,.0f} vs {rates['F.linear']:,.0f} events/s ({rates['oneDNN'] / rates['F.linear']:.2f}x)"


def profile_block(models: dict[str, nn.Module], x: torch.Tensor, X: np.ndarray, names: list[str]) -> str:
    """Top operators (self CPU time) of 20 training steps and 20 scoring batches per implementation."""
    from torch.profiler import ProfilerActivity, profile

    out = ["Profile (torch.profiler, self CPU time; 20 training steps of batch 1024 / 20 scoring batches of 4096):", ""]
    for name in dict.fromkeys(names):
        model, fn = models[name], log_prob_fn(name, models[name])
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        model.train()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for i in range(20):
                loss = -fn(x[i * TRAIN_BATCH : (i + 1) * TRAIN_BATCH]).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        out += [f"{name}, training:", "```", _top(prof), "```"]
        model.eval()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            if name.startswith("rareflow"):
                model.evaluate(X[: 20 * 4096], batch_size=4096, latent=False)
            else:
                with torch.inference_mode():
                    for i in range(20):
                        fn(x[i * 4096 : (i + 1) * 4096])
        out += [f"{name}, scoring:", "```", _top(prof), "```"]
    return "\n".join(out)


def _top(prof: object, n: int = 8) -> str:
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=n)  # type: ignore[attr-defined]
    keep = [ln for ln in table.splitlines() if ln.strip() and not set(ln.strip()) <= set("- ")]
    return "\n".join(ln[:140] for ln in keep[: n + 1])


if __name__ == "__main__":
    main()
