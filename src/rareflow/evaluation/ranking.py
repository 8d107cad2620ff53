"""Who wins a compare run, and how each method is named in the report and the plots.

Two rules the report must never break:

* **No crown below chance.** A method whose test ROC AUC is at or below 0.5 ranks rare events
  *lower* than bulk events: it is flagged as *inverted*, never called the best, whatever its other
  numbers (an inverted score can still show a high efficiency at one cut by accident of ties).
  :func:`winner` picks the best value of a metric among the methods with AUC > 0.5 only.
* **A one-class method always says which class it learned.** ``flow`` trained on gammas and
  ``flow`` trained on hadrons are different selections (the one scores closeness to the rare
  class, the other distance from the bulk); :func:`method_labels` appends ``fit_on`` to every
  one-class label (and to two-class methods that take a ``fit_on``, e.g. ``selfsup-flow``)
  unless the label already names it.

Both read only the metrics document (``metrics.json`` plus the run's context): the evaluation
never imports the detector registry.
"""

from __future__ import annotations

from typing import Any

#: ROC AUC at or below this value is "no better than chance": never a winner, flagged when below.
CHANCE_AUC = 0.5

#: Fallback for metrics.json files written before the result rows carried ``fit_on``.
_TWO_CLASS_FIT_ON = {"selfsup-flow": "bulk"}


def is_inverted(metrics: dict[str, Any]) -> bool:
    """True when the method's mean test AUC is below chance (its score ranks rare events lower)."""
    auc = metrics.get("auc")
    return auc is not None and auc < CHANCE_AUC


def winner(methods: dict[str, dict[str, Any]], value: Any = "auc") -> str | None:
    """The method with the highest ``value`` among those with AUC > 0.5; None when none beats chance.

    ``value``: a metric key of the aggregated rows, or a callable ``metrics -> float | None``.
    """
    get = value if callable(value) else (lambda v: v.get(value))
    ok = {}
    for name, v in methods.items():
        auc, x = v.get("auc"), get(v)
        if auc is not None and auc > CHANCE_AUC and x is not None:
            ok[name] = x
    return max(ok, key=ok.get) if ok else None


def fit_on_of(doc: dict[str, Any], method: str) -> str | None:
    """The class a method learned (``bulk`` / ``rare``), or None for methods without ``fit_on``.

    From the result rows when they carry it, else from the method's config: an explicit
    ``params.fit_on``; the anomaly scenario's ``fit_on`` for one-class methods; ``bulk`` (the
    detectors' documented default) otherwise.
    """
    row = doc.get("methods", {}).get(method, {})
    if isinstance(row.get("fit_on"), str) and row["fit_on"] in ("bulk", "rare"):
        return row["fit_on"]
    cfg = next((m for m in doc.get("methods_config", []) if (m.get("label") or m.get("name")) == method), {})
    params, name = cfg.get("params") or {}, cfg.get("name", method)
    if params.get("fit_on") in ("bulk", "rare"):
        return params["fit_on"]
    if row.get("kind") == "one-class":
        sc = doc.get("scenario", {})
        return sc.get("fit_on") if sc.get("kind") == "anomaly" else "bulk"
    return _TWO_CLASS_FIT_ON.get(name)


def method_labels(doc: dict[str, Any]) -> dict[str, str]:
    """``{method key: display label}``; labels of methods with a ``fit_on`` name it."""
    out = {}
    for method in doc.get("methods", {}):
        fit_on = fit_on_of(doc, method)
        out[method] = method if fit_on is None or "fit_on" in method else f"{method} [fit_on {fit_on}]"
    return out
