"""Read members of an untrusted zip archive (a model file) with bounded memory and time.

A zip header states each member's compressed and uncompressed size; :mod:`zipfile` never
inflates more than the stated size (and checks the CRC at the end), so checking the *stated*
sizes before reading bounds the cost of a "zip bomb": a 3 MB member that claims to inflate to
3 GiB is refused from its header, without inflating a byte. The limits:

* at most :data:`MAX_MEMBERS` members;
* each member at most ``limit`` bytes uncompressed (per call; :data:`MAX_MEMBER_BYTES` by default);
* a compression ratio of at most :data:`MAX_RATIO` for members above :data:`RATIO_FLOOR` bytes
  (weights and scores compress by ~1.1x; only crafted or degenerate data compresses 100x);
* stored or deflated members only (no encryption, no other compression methods).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

MAX_MEMBERS = 256
MAX_MEMBER_BYTES = 4 * 1024**3
MAX_RATIO = 200.0
RATIO_FLOOR = 4 * 1024**2
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}


class UnsafeMember(ValueError):
    """A member that is refused before reading (the message says why)."""


def check_archive(zf: zipfile.ZipFile) -> None:
    """Refuse an archive with too many members."""
    n = len(zf.infolist())
    if n > MAX_MEMBERS:
        raise UnsafeMember(f"{n} archive members (a model file has a few; limit {MAX_MEMBERS})")


def read_member(zf: zipfile.ZipFile, name: str, limit: int = MAX_MEMBER_BYTES) -> bytes:
    """The bytes of member ``name`` after checking its header (size, ratio, method, encryption)."""
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise UnsafeMember(f"member {name} is missing") from None
    if info.flag_bits & 0x1:
        raise UnsafeMember(f"member {name} is encrypted")
    if info.compress_type not in _METHODS:
        raise UnsafeMember(f"member {name} uses unsupported compression method {info.compress_type}")
    if info.file_size > limit:
        raise UnsafeMember(f"member {name} inflates to {info.file_size} bytes (limit {limit})")
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > RATIO_FLOOR and ratio > MAX_RATIO:
        raise UnsafeMember(f"member {name} has compression ratio {ratio:.0f} (limit {MAX_RATIO:.0f}): a zip bomb?")
    with zf.open(info) as fh:
        data = fh.read(limit + 1)  # zipfile stops at the stated size; the +1 guards a lying header
    if len(data) > limit:
        raise UnsafeMember(f"member {name} is larger than its header says")
    return data


def open_archive(path: Path) -> zipfile.ZipFile:
    """Open ``path`` as a zip archive and check its member count."""
    zf = zipfile.ZipFile(path)
    try:
        check_archive(zf)
    except Exception:
        zf.close()
        raise
    return zf
