"""fastflow ``map: nll-light`` (issue 19 item 4): the feature NLL pointed at the light under it."""

from __future__ import annotations

import numpy as np
import torch

from rareflow.detectors import get_detector
from rareflow.detectors.fastflow import light_gated


def test_light_gated_moves_a_peak_beside_the_light_onto_it() -> None:
    nll = torch.zeros(1, 7, 7)
    nll[0, 3, 4] = 5.0  # the NLL peaks beside the bright cell (the feature sees the edge)
    u = torch.zeros(1, 7, 7)
    u[0, 3, 3], u[0, 0, 0] = 4.0, 9.0  # the bright cell, and brighter light far from the peak
    m = light_gated(nll, u)
    assert int(m.flatten().argmax()) == 3 * 7 + 3
    assert float(m[0, 0, 0]) == 0.0 and float(m.min()) >= 0.0


def test_nll_light_map_is_zero_where_there_is_no_light(mixed_grids) -> None:
    X, _ = mixed_grids
    det = get_detector("fastflow", map="nll-light", epochs=1, backbone_epochs=1, progress=False).fit(X[:150])
    maps = det.anomaly_map(X[150:160])
    assert maps.shape == (10, *X.shape[1:]) and np.all(maps >= 0)
    assert np.all(maps[X[150:160] <= 0] == 0)
