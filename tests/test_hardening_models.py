"""Hostile and damaged model files: refused with one line "damaged model file <path>: <what>",
in bounded memory and time, never a traceback and never a silently wrong model (issue 16, §1, §3)."""

from __future__ import annotations

import io
import json
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from rareflow.cli import main
from rareflow.detectors import get_detector
from rareflow.errors import RareflowError
from rareflow.persistence import load_model, save_model
from tests.conftest import toy_table


@pytest.fixture(scope="module")
def good_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    df = toy_table(300, 100)
    det = get_detector("mahalanobis").fit(df[["a", "b", "c"]], (df["label"] == "gamma").astype(int))
    path = tmp_path_factory.mktemp("m") / "good.rfm"
    save_model(det, path)
    return path


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _rewrite(src: Path, dst: Path, meta=None, arrays=None, drop=(), extra=None) -> Path:
    """A copy of ``src`` with meta.json / arrays replaced (``meta``: callable on the dict or raw bytes)."""
    members = _members(src)
    if meta is not None:
        members["meta.json"] = meta if isinstance(meta, bytes) else json.dumps(meta(json.loads(members["meta.json"]))).encode()
    if arrays is not None:
        members["arrays.safetensors"] = st_save(arrays(st_load(members["arrays.safetensors"])))
    for name in drop:
        members.pop(name)
    members.update(extra or {})
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return dst


def _set(key, value):
    def edit(meta: dict) -> dict:
        meta[key] = value
        return meta

    return edit


def _without(key):
    def edit(meta: dict) -> dict:
        meta.pop(key)
        return meta

    return edit


def _deep(n: int) -> bytes:
    return b'{"schema_version": 1, "params": ' + b"[" * n + b"]" * n + b"}"


HOSTILE_META = {
    "no-method": (_without("method"), "method"),
    "no-params": (_without("params"), "params"),
    "no-threshold": (_without("threshold"), "threshold"),
    "params-list": (_set("params", [1, 2]), "params"),
    "method-int": (_set("method", 7), "method"),
    "threshold-str": (_set("threshold", "high"), "threshold"),
    "threshold-nan": (b'{"schema_version": 1, "threshold": NaN}', "threshold"),
    "meta-list": (b"[1, 2, 3]", "not a mapping"),
    "deep-json": (_deep(20000), "nested too deeply"),
    "deep-params": (_set("params", json.loads("[" * 40 + "]" * 40)), "params"),
    "100k-digit-int": (b'{"schema_version": 1, "n_features": ' + b"9" * 100_000 + b"}", "not valid JSON"),
    "blob-traversal": (_set("blobs", ["../../etc/passwd"]), "plain file name"),
    "dup-features": (_set("feature_names", ["a", "a", "c"]), "feature names repeat"),
    "features-vs-n": (_set("feature_names", ["a", "b"]), "n_features"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_META))
def test_hostile_meta_json_is_damaged_model(case: str, good_model: Path, tmp_path: Path) -> None:
    edit, what = HOSTILE_META[case]
    bad = _rewrite(good_model, tmp_path / f"{case}.rfm", meta=edit)
    with pytest.raises(RareflowError, match="damaged model file") as info:
        load_model(bad)
    msg = str(info.value)
    assert what in msg and str(bad) in msg and len(msg) < 400, msg


@pytest.mark.parametrize(
    "case,kwargs,what",
    [
        ("relabel-power", {"meta": _set("method", "power-mahalanobis")}, "damaged"),
        ("relabel-gbdt", {"meta": _set("method", "gbdt")}, "damaged"),
        ("relabel-flow", {"meta": _set("method", "flow")}, "damaged"),
        ("missing-array", {"arrays": lambda a: {k: v for k, v in a.items() if k == "decision_scores_"}}, "damaged"),
        ("wrong-shape-cov", {"arrays": lambda a: {k: (v[:1] if v.ndim == 2 else v) for k, v in a.items()}}, "damaged"),
        ("no-scores", {"arrays": lambda a: {k: v for k, v in a.items() if k != "decision_scores_"}}, "decision_scores_"),
        ("random-arrays", {"extra": {"arrays.safetensors": np.random.default_rng(0).bytes(5000)}}, "damaged"),
    ],
)
def test_inconsistent_model_is_damaged(case: str, kwargs: dict, what: str, good_model: Path, tmp_path: Path) -> None:
    bad = _rewrite(good_model, tmp_path / f"{case}.rfm", **kwargs)
    with pytest.raises(RareflowError, match="damaged model file") as info:
        load_model(bad)
    assert what in str(info.value)


def _gbdt_model(tmp_path: Path) -> Path:
    df = toy_table(200, 100)
    det = get_detector("gbdt", max_iter=5).fit(df[["a", "b"]], (df["label"] == "gamma").astype(int))
    save_model(det, tmp_path / "gbdt.rfm")
    return tmp_path / "gbdt.rfm"


@pytest.mark.parametrize("blob", ["random", "deep"])
def test_hostile_skops_blob_is_damaged_model(blob: str, tmp_path: Path) -> None:
    src = _gbdt_model(tmp_path)
    names = [n for n in _members(src) if n.startswith("blobs/")]
    assert names
    data = np.random.default_rng(1).bytes(4096) if blob == "random" else _deep_skops(20000)
    bad = _rewrite(src, tmp_path / "bad.rfm", extra={names[0]: data})
    with pytest.raises(RareflowError, match="damaged model file"):
        load_model(bad)


def _deep_skops(n: int) -> bytes:
    """A skops zip whose schema.json nests ``n`` levels."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("schema.json", '{"content": ' * n + "1" + "}" * n)
    return buf.getvalue()


def _with_member_flags(src: Path, dst: Path, name: str, flag_bits: int = 0, compress_type: int | None = None) -> Path:
    """Patch the central directory entry of ``name`` (encryption flag / compression method)."""
    raw = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as zf:
        info = zf.getinfo(name)
    pos = raw.find(b"PK\x01\x02")
    while pos >= 0:
        n = int.from_bytes(raw[pos + 28 : pos + 30], "little")
        if raw[pos + 46 : pos + 46 + n].decode() == name:
            break
        pos = raw.find(b"PK\x01\x02", pos + 4)
    assert pos >= 0
    if flag_bits:
        raw[pos + 8 : pos + 10] = (info.flag_bits | flag_bits).to_bytes(2, "little")
    if compress_type is not None:
        raw[pos + 10 : pos + 12] = compress_type.to_bytes(2, "little")
    dst.write_bytes(bytes(raw))
    return dst


@pytest.mark.parametrize("patch,what", [({"flag_bits": 1}, "encrypted"), ({"compress_type": 14}, "unsupported compression")])
def test_encrypted_or_unsupported_member(patch: dict, what: str, good_model: Path, tmp_path: Path) -> None:
    bad = _with_member_flags(good_model, tmp_path / "bad.rfm", "arrays.safetensors", **patch)
    with pytest.raises(RareflowError, match="damaged model file") as info:
        load_model(bad)
    assert what in str(info.value)


def _bomb(path: Path, member: str, gib: float, keep_meta: Path | None = None) -> Path:
    """A zip whose ``member`` inflates to ``gib`` GiB of zeros (about 1 MB per GiB on disk)."""
    zeros = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        if keep_meta is not None:
            for name, data in _members(keep_meta).items():
                if name != member:
                    zf.writestr(name, data)
        with zf.open(member, "w", force_zip64=True) as fh:
            for _ in range(int(gib * 1024)):
                fh.write(zeros)
    return path


@pytest.mark.parametrize(
    "member,gib", [pytest.param("arrays.safetensors", 3.0, marks=pytest.mark.slow), ("meta.json", 0.25)]
)  # slow: writing the 3 GiB bomb (not refusing it) takes ~40 s on a loaded 2-core machine
def test_zip_bomb_refused_cheaply(member: str, gib: float, good_model: Path, tmp_path: Path) -> None:
    bomb = _bomb(tmp_path / "bomb.rfm", member, gib, keep_meta=good_model)
    assert bomb.stat().st_size < 4_000_000
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(RareflowError, match="damaged model file"):
        load_model(bomb)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 2.0 and peak < 100 * 2**20, (elapsed, peak)


def test_cli_score_with_damaged_model_one_line(good_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _rewrite(good_model, tmp_path / "bad.rfm", meta=_set("method", "gbdt"))
    data = tmp_path / "t.parquet"
    toy_table(50, 20).to_parquet(data)
    out = tmp_path / "s.parquet"
    assert main(["score", "--model", str(bad), "--data", str(data), "--out", str(out), "-q"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "damaged model file" in lines[0] and not out.exists()


def test_good_model_still_loads(good_model: Path) -> None:
    det = load_model(good_model)
    assert det.name == "mahalanobis" and det.n_features_in_ == 3
