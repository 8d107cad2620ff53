"""Training from a memory-mapped grid file (issue 19, scale): the streamed path trains the same
model as the in-memory one, reads only batches, and the grid files are written atomically."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

from rareflow.detectors import get_detector
from rareflow.errors import RareflowError
from rareflow.iact.grid_files import open_grids, simulate_grids, write_grids
from rareflow.training import Batch, StreamedRows, is_disk_backed, train, training_rows


def _grid_file(tmp_path, n=600, shape=(9, 9), seed=0):
    r = np.random.default_rng(seed)
    y = (r.random(n) < 0.5).astype(np.float32)
    X = (r.normal(0, 1, (n, *shape)) + 0.8 * y[:, None, None] * np.eye(*shape)).astype(np.float32)
    path = tmp_path / "grids.npy"
    assert write_grids(path, (X[a : a + 128] for a in range(0, n, 128)), shape) == n
    return path, X, y


def test_grid_file_round_trip_and_errors(tmp_path):
    path, X, _ = _grid_file(tmp_path)
    m = open_grids(path)
    assert is_disk_backed(m) and is_disk_backed(m.reshape(len(m), -1)) and not is_disk_backed(np.array(m))
    assert np.array_equal(np.asarray(m), X)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grids.npy"]  # no temporary files left
    with pytest.raises(RareflowError, match="chunk of grids has shape"):
        write_grids(tmp_path / "bad.npy", [X[:5, :3]], (9, 9))
    assert not any(p.name.startswith(".bad") or p.name == "bad.npy" for p in tmp_path.iterdir())
    np.save(tmp_path / "ints.npy", np.zeros((2, 3, 3), dtype=np.int64))
    with pytest.raises(RareflowError, match="holds int64"):
        open_grids(tmp_path / "ints.npy")
    with open(tmp_path / "liar.npy", "wb") as f:  # a header promising 10^12 images over a few bytes
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (10**12, 29, 29)})
        f.write(b"\0" * 64)
    with pytest.raises(RareflowError, match="liar.npy: not a grid file"):
        open_grids(tmp_path / "liar.npy")
    with pytest.raises(RareflowError, match="no such grid file"):
        open_grids(tmp_path / "missing.npy")
    assert write_grids(tmp_path / "empty.npy", [], (4, 4)) == 0 and open_grids(tmp_path / "empty.npy").shape == (0, 4, 4)


def test_streamed_rows_train_exactly_as_in_memory_with_one_block(tmp_path):
    path, X, y = _grid_file(tmp_path)
    m = open_grids(path)
    idx = np.arange(0, len(X), 2)
    streamed = StreamedRows(m.reshape(len(m), -1), idx, y, block_rows=len(idx))
    memory = Batch(torch.from_numpy(X.reshape(len(X), -1)[idx]), label=torch.from_numpy(y[idx]))

    def fit(data):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(81, 16), torch.nn.ELU(), torch.nn.Linear(16, 1))
        loss = lambda mod, b: torch.nn.functional.binary_cross_entropy_with_logits(mod(b.x)[:, 0], b.label)  # noqa: E731
        train(net, loss, data, epochs=3, batch_size=32, seed=1, progress=False)
        return torch.cat([p.detach().flatten() for p in net.parameters()])

    assert torch.equal(fit(streamed), fit(memory))


def test_block_order_is_a_permutation_of_local_blocks():
    rows = StreamedRows(np.zeros((1000, 2), np.float32), np.arange(1000), block_rows=100)
    order = rows.order(torch.Generator().manual_seed(0))
    assert sorted(order.tolist()) == list(range(1000))
    blocks = order.reshape(10, 100) // 100  # each run of 100 positions stays within one block
    assert bool((blocks == blocks[:, :1]).all()) and len(set(blocks[:, 0].tolist())) == 10


def test_cnn_classifier_trains_from_a_grid_file_in_bounded_memory(tmp_path):
    """A 4.4 MB simulated grid file: the fit streams it (numpy never holds a copy of the file)
    and scores it equally to the in-memory fit of the same rows within float noise."""
    table = simulate_grids(tmp_path / "sim.npy", n_events=4000, seed=3)
    grids = open_grids(tmp_path / "sim.npy")
    assert len(table) == len(grids) and np.array_equal(table["image_index"], np.arange(len(grids)))
    assert set(table["label"]) == {"gamma", "proton"} and bool(table["is_valid"].all())
    y = (table["label"] == "gamma").to_numpy().astype(int)
    kw = dict(channels=[4, 8], hidden=[16], random_state=0, training={"epochs": 2, "progress": False, "score_batch_size": 256})
    get_detector("cnn-classifier", **kw).fit(np.array(grids[:64]), y[:64])  # first-call imports and caches

    def fit(X):
        tracemalloc.start()
        det = get_detector("cnn-classifier", **kw).fit(X, y)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return det, peak

    disk, peak = fit(grids)
    mem, peak_mem = fit(np.array(grids))
    assert peak < grids.nbytes / 2 < peak_mem, f"numpy peaks {peak / 1e6:.1f} / {peak_mem / 1e6:.1f} MB, file {grids.nbytes / 1e6:.1f} MB"
    assert isinstance(training_rows(grids.reshape(len(grids), -1), np.arange(3)), StreamedRows)
    s_disk, s_mem = disk.decision_function(grids), mem.decision_function(np.array(grids))
    assert np.isfinite(s_disk).all()
    # fewer rows than one shuffle block: the same order, so the same model
    np.testing.assert_allclose(s_disk, s_mem, rtol=1e-4, atol=1e-4)
