"""Vectorised tail-cuts image cleaning and island labelling for batches of IACT images.

Tail cuts — the two-level "picture/boundary" cleaning of the Whipple analyses (e.g. Reynolds et al.
1993, ApJ 404, 206) and of ctapipe — with the exact semantics of ctapipe's ``tailcuts_clean``:

* ``above_pic = q >= picture``, ``above_bnd = q >= boundary``;
* picture pixels ``pic = above_pic`` and, when ``min_number_picture_neighbors = m > 0`` (and not
  ``keep_isolated_pixels``), ``pic &= (number of neighbours in above_pic) >= m``;
* kept pixels ``(above_bnd & any neighbour in pic) | (pic & any neighbour in above_bnd)``, or with
  ``keep_isolated_pixels``: ``(above_bnd & any neighbour in pic) | pic``.

Implementation: the images are transposed to pixel-major order and every boolean pixel state is
bit-packed across events (64 events per ``uint64`` word), so a neighbour "any"/"count >= m" is a
handful of word-wise ORs/ANDs over (n_pixels, n_events / 64) arrays — the neighbour logic costs
almost nothing next to reading the images once.

Islands (connected groups of surviving pixels, ctapipe's ``number_of_islands``) are found with
``scipy.sparse.csgraph.connected_components`` on one graph holding the surviving pixels of all events
(nodes = surviving (pixel, event) pairs, edges = neighbouring surviving pixels of the same event), so
the whole batch is labelled by one C call and the cost scales with the number of surviving pixels.
Labels are numbered 1..n per event in order of their lowest pixel index, as ctapipe does.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from rareflow.iact.camera import CameraGeometry
from rareflow.errors import RareflowError

__all__ = [
    "clean_transposed",
    "island_components",
    "islands_from_mask_t",
    "label_islands",
    "mask_nodes",
    "number_of_islands",
    "tailcuts_clean",
]


def _pack(bits_t: np.ndarray, n_words: int) -> np.ndarray:
    """Pack a (P, n) bool array along events into (P + 1, n_words) uint64, last row zero."""
    n_pix, n = bits_t.shape
    out = np.zeros((n_pix + 1, n_words * 8), dtype=np.uint8)
    out[:n_pix, : (n + 7) // 8] = np.packbits(bits_t, axis=1, bitorder="little")
    return out.view(np.uint64)


def _unpack(words: np.ndarray, n_pix: int, n: int) -> np.ndarray:
    """Inverse of :func:`_pack` (rows ``< n_pix``): (P, n) bool."""
    return np.unpackbits(words[:n_pix].view(np.uint8), axis=1, count=n, bitorder="little").view(bool)


def _any_neighbor(words: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Bit set where at least one neighbour's bit is set; ``table`` (P, K) padded with P."""
    out = words[table[:, 0]]
    for k in range(1, table.shape[1]):
        out |= words[table[:, k]]
    return out


def _count_at_least(words: np.ndarray, table: np.ndarray, m: int) -> np.ndarray:
    """Bit set where at least ``m`` neighbours' bits are set (bit-sliced saturating counter)."""
    levels = [np.zeros((table.shape[0], words.shape[1]), dtype=np.uint64) for _ in range(m)]
    for k in range(table.shape[1]):
        x = words[table[:, k]]
        for lev in range(m - 1, 0, -1):
            levels[lev] |= levels[lev - 1] & x
        levels[0] |= x
    return levels[m - 1]


def _with_pad_row(words: np.ndarray) -> np.ndarray:
    return np.vstack([words, np.zeros((1, words.shape[1]), dtype=np.uint64)])


def clean_transposed(
    images_t: np.ndarray,
    camera: CameraGeometry,
    picture_thresh: float | np.ndarray = 7.0,
    boundary_thresh: float | np.ndarray = 5.0,
    min_number_picture_neighbors: int = 0,
    keep_isolated_pixels: bool = False,
) -> np.ndarray:
    """Tail-cuts cleaning of pixel-major images ``images_t`` (n_pixels, n_events); see module doc."""
    n_pix, n = images_t.shape
    n_words = max(1, (n + 63) // 64)
    table = camera.neighbor_table()
    # per-pixel thresholds become a column; scalars stay scalars so numpy compares exactly as ctapipe
    pic_thr = np.asarray(picture_thresh).reshape(-1, 1) if np.ndim(picture_thresh) else picture_thresh
    bnd_thr = np.asarray(boundary_thresh).reshape(-1, 1) if np.ndim(boundary_thresh) else boundary_thresh
    above_pic = _pack(images_t >= pic_thr, n_words)
    above_bnd = _pack(images_t >= bnd_thr, n_words)
    if keep_isolated_pixels:
        pic = above_pic[:n_pix]
        keep = (above_bnd[:n_pix] & _any_neighbor(above_pic, table)) | pic
    else:
        if min_number_picture_neighbors > 0:
            enough = _count_at_least(above_pic, table, int(min_number_picture_neighbors))
            pic = _with_pad_row(above_pic[:n_pix] & enough)
        else:
            pic = above_pic
        keep = (above_bnd[:n_pix] & _any_neighbor(pic, table)) | (pic[:n_pix] & _any_neighbor(above_bnd, table))
    return _unpack(keep, n_pix, n)


def _as_batch(images: np.ndarray, camera: CameraGeometry, what: str) -> tuple[np.ndarray, bool]:
    arr = np.asarray(images)
    single = arr.ndim == 1
    arr = arr[None, :] if single else arr
    if arr.ndim != 2 or arr.shape[1] != camera.n_pixels:
        raise RareflowError(
            f"{what}: expected shape (n_events, {camera.n_pixels}) for camera {camera.name!r}, "
            f"got {np.shape(images)}; pass one value per pixel"
        )
    return arr, single


def tailcuts_clean(
    images: np.ndarray,
    camera: CameraGeometry,
    picture_thresh: float | np.ndarray = 7.0,
    boundary_thresh: float | np.ndarray = 5.0,
    min_number_picture_neighbors: int = 0,
    keep_isolated_pixels: bool = False,
) -> np.ndarray:
    """Tail-cuts cleaning of a batch ``images`` (n_events, n_pixels) or one image (n_pixels,).

    Returns a boolean mask of the same shape, equal to ctapipe's ``tailcuts_clean`` applied per event
    with the same arguments (thresholds may be scalars or per-pixel arrays).
    """
    arr, single = _as_batch(images, camera, "tailcuts_clean")
    mask_t = clean_transposed(
        np.ascontiguousarray(arr.T),
        camera,
        picture_thresh,
        boundary_thresh,
        min_number_picture_neighbors,
        keep_isolated_pixels,
    )
    mask = np.ascontiguousarray(mask_t.T)
    return mask[0] if single else mask


def mask_nodes(mask_t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Surviving (pixel, event) pairs of a pixel-major mask, in pixel-major order."""
    flat = np.flatnonzero(mask_t)
    node_pix, node_ev = np.divmod(flat, mask_t.shape[1])
    return node_pix, node_ev


def island_components(
    mask_t: np.ndarray, node_pix: np.ndarray, node_ev: np.ndarray, camera: CameraGeometry
) -> tuple[int, np.ndarray]:
    """Connected components of the surviving pixels of all events at once.

    ``mask_t`` (n_pixels, n_events) bool; nodes as returned by :func:`mask_nodes`. Edges join
    neighbouring surviving pixels of the same event. Returns ``(n_components, component_of_node)``.
    """
    n_nodes = node_pix.size
    if n_nodes == 0:
        return 0, np.zeros(0, dtype=np.int64)
    n_pix = mask_t.shape[0]
    node_id = np.empty(mask_t.shape, dtype=np.int64)
    node_id[node_pix, node_ev] = np.arange(n_nodes)
    table = camera.neighbor_table()
    nb = table[node_pix]  # (n_nodes, K), padded with n_pix
    valid = nb > node_pix[:, None]  # each undirected edge once; padding (= n_pix) passes here ...
    nb_c = np.minimum(nb, n_pix - 1)
    valid &= nb < n_pix  # ... and is removed here
    valid &= mask_t[nb_c, node_ev[:, None]]
    src, k = np.nonzero(valid)
    dst = node_id[nb_c[src, k], node_ev[src]]
    graph = sp.csr_array((np.ones(src.size, dtype=np.int8), (src, dst)), shape=(n_nodes, n_nodes))
    n_comp, comp = connected_components(graph, directed=False)
    return int(n_comp), comp


def islands_from_mask_t(
    mask_t: np.ndarray, camera: CameraGeometry, nodes: tuple[np.ndarray, np.ndarray] | None = None
) -> np.ndarray:
    """Number of islands per event of a pixel-major mask (n_pixels, n_events)."""
    node_pix, node_ev = mask_nodes(mask_t) if nodes is None else nodes
    n_comp, comp = island_components(mask_t, node_pix, node_ev, camera)
    n = mask_t.shape[1]
    if n_comp == 0:
        return np.zeros(n, dtype=np.int64)
    comp_ev = np.empty(n_comp, dtype=np.int64)
    comp_ev[comp] = node_ev
    return np.bincount(comp_ev, minlength=n)


def _mask_t(masks: np.ndarray, camera: CameraGeometry) -> tuple[np.ndarray, bool]:
    arr, single = _as_batch(masks, camera, "islands")
    return np.ascontiguousarray(arr.T.astype(bool)), single


def number_of_islands(masks: np.ndarray, camera: CameraGeometry) -> np.ndarray | int:
    """Number of connected groups of ``True`` pixels per event (ctapipe's ``number_of_islands``)."""
    mask_t, single = _mask_t(masks, camera)
    counts = islands_from_mask_t(mask_t, camera)
    return int(counts[0]) if single else counts


def label_islands(masks: np.ndarray, camera: CameraGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Island count and per-pixel island labels (0 = not in mask, 1..n per event).

    Labels are numbered in order of each island's lowest pixel index, like ctapipe's
    ``number_of_islands``. Returns ``(n_islands (n_events,), labels (n_events, n_pixels) int32)``
    (or an ``int`` and a 1-D array for a single mask).
    """
    mask_t, single = _mask_t(masks, camera)
    n = mask_t.shape[1]
    labels = np.zeros((n, camera.n_pixels), dtype=np.int32)
    node_pix, node_ev = mask_nodes(mask_t)
    n_comp, comp = island_components(mask_t, node_pix, node_ev, camera)
    counts = np.zeros(n, dtype=np.int64)
    if n_comp:
        # first node of each component in (event, pixel) order = its lowest pixel
        order = np.lexsort((node_pix, node_ev))
        comp_sorted = comp[order]
        _, first = np.unique(comp_sorted, return_index=True)
        first = np.sort(first)
        comps_in_order = comp_sorted[first]
        comp_ev = node_ev[order][first]
        counts = np.bincount(comp_ev, minlength=n)
        start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank = np.empty(n_comp, dtype=np.int64)
        rank[comps_in_order] = np.arange(n_comp) - start[comp_ev] + 1
        labels[node_ev, node_pix] = rank[comp]
    if single:
        return int(counts[0]), labels[0]
    return counts, labels
