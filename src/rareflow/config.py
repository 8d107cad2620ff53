"""Experiment configuration (YAML), validated by pydantic: data, scenario, threshold, methods.

See SPEC "Experiment config". Unknown keys are errors (a typo must not be silently ignored).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rareflow.detectors.thresholds import RULE_FIELDS, ThresholdRule
from rareflow.errors import RareflowError
from rareflow.safe_yaml import MAX_BYTES, load_yaml
from rareflow.seeding import check_seed


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SimulateConfig(_Strict):
    """Arguments of the built-in simulator (``source: simulate``). ``n_events`` valid events
    (>= 3 pixels after cleaning): the simulator draws showers until it has them."""

    n_events: int = Field(default=20000, gt=0)
    rare_fraction: float = Field(default=0.5, gt=0, lt=1)
    muon_fraction: float = Field(default=0.02, ge=0, lt=1)
    source: Literal["point", "diffuse"] = "point"
    dead_pixel_fraction: float = Field(default=0.0, ge=0, lt=1)
    #: a sim_telarray file whose camera the showers are drawn on (default: the toy TAIGA-like camera)
    camera_from: str | None = None
    tel_id: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _tel_needs_file(self) -> "SimulateConfig":
        if self.tel_id is not None and self.camera_from is None:
            raise ValueError("data.simulate.tel_id goes with data.simulate.camera_from (the sim_telarray file)")
        return self


class IdxConfig(_Strict):
    """Two IDX image sets (``source: idx``), e.g. MNIST digits (bulk) vs notMNIST letters (rare)."""

    bulk_path: str
    rare_path: str
    n_per_class: int | None = Field(default=None, gt=0)


class DataConfig(_Strict):
    """Where the events come from. Image methods need ``images``: ``true`` with the simulator, the
    ``.npz`` of ``rareflow simulate --images-out`` with ``source: table`` (joined on event_id);
    ``source: simtel`` (a sim_telarray file) and ``source: idx`` always carry images."""

    source: Literal["simulate", "table", "magic", "simtel", "idx"] = "simulate"
    path: str | None = None
    format: Literal["parquet", "csv", "magic", "dl1"] | None = None
    features: list[str] | None = None
    rare_label: str = "gamma"
    bulk_label: list[str] | None = None
    drop_nonfinite: bool = False
    simulate: SimulateConfig = Field(default_factory=SimulateConfig)
    images: bool | str = False
    idx: IdxConfig | None = None

    @field_validator("bulk_label", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("features", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        return [s.strip() for s in v.split(",") if s.strip()] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _path_needed(self) -> "DataConfig":
        if self.source in ("table", "magic", "simtel") and not self.path:
            raise ValueError(f"data.path is required for source '{self.source}'")
        if self.source == "idx" and self.idx is None:
            raise ValueError("data.idx (bulk_path, rare_path) is required for source 'idx'")
        if isinstance(self.images, str) and self.source != "table":
            raise ValueError("data.images as a path (.npz) goes with source 'table'; use images: true for the simulator")
        if self.images is True and self.source not in ("simulate", "simtel", "idx"):
            raise ValueError("data.images: true needs source simulate; give a table the .npz path instead")
        return self


class ScenarioConfig(_Strict):
    kind: Literal["rare", "anomaly"] = "rare"
    fit_on: Literal["bulk", "rare", "both"] = "both"
    test_size: float = Field(default=0.5, gt=0, lt=1)
    test_rare_fraction: float = Field(default=1e-3, gt=0, lt=1)
    fraction_mode: Literal["weights", "subsample"] = "weights"
    min_rare_events: int = Field(default=10, ge=1)
    contamination: float = Field(default=0.0, ge=0, lt=0.5)
    seeds: list[Any] = Field(default_factory=lambda: [0, 1, 2], min_length=1)

    @field_validator("seeds", mode="after")
    @classmethod
    def _seeds(cls, v: list[Any]) -> list[int]:
        try:
            seeds = [check_seed(s, "seed") for s in v]
        except RareflowError as exc:
            raise ValueError(str(exc)) from None
        dup = sorted({s for s in seeds if seeds.count(s) > 1})
        if dup:
            raise ValueError(f"seed(s) {dup} listed twice; list each seed once")
        return seeds

    @model_validator(mode="after")
    def _fit_on(self) -> "ScenarioConfig":
        if self.kind == "anomaly" and self.fit_on == "both":
            raise ValueError("scenario.fit_on must be 'bulk' or 'rare' for the anomaly scenario")
        return self


class ThresholdConfig(ThresholdRule):
    """The experiment's threshold section: the detectors' own rule model
    (:class:`rareflow.detectors.thresholds.ThresholdRule`) plus where the cut is chosen.

    The rule fields override every detector's own rule **only when given** (:meth:`overrides`);
    otherwise each detector keeps its rule (e.g. power-mahalanobis's chi2 default).
    ``calibration_fraction``: the part of the training data held out to place the cut.
    """

    calibration_fraction: float = Field(default=0.2, ge=0, lt=0.9)

    def overrides(self) -> bool:
        """True when the section names a rule field (rule, bulk_acceptance, ...)."""
        return bool(self.model_fields_set & set(RULE_FIELDS))

    def rule_dict(self) -> dict[str, Any]:
        """The rule fields given explicitly ({} when none: the detectors' own rules apply)."""
        return {k: getattr(self, k) for k in RULE_FIELDS if k in self.model_fields_set}


class SignificanceConfig(_Strict):
    """Exposure for the expected Li & Ma significance: ON-region events before cuts, on/off ratio."""

    n_events: float = Field(default=1e6, gt=0)
    alpha: float = Field(default=0.2, gt=0)


class BinningConfig(_Strict):
    """Per-bin evaluation (``docs/energy.md``): the bin column, its edges and the per-bin cut rule.

    ``column: null`` (default) picks ``true_energy`` when the table has it (simulations), else
    ``fSize`` (MAGIC) or ``hillas_intensity`` as an energy *proxy*; ``enabled: false`` turns it off.
    Edges: ``edges`` (a list), or ``per_decade`` log bins over ``range`` (default: the data's range;
    automatic edges merge a bin without test events into its neighbour, explicit ones refuse it).
    ``rule``/``value``: the cut chosen on the training (calibration) rows of each bin, e.g.
    ``rare_efficiency: 0.7`` (pyirf's percentile cut); default value 0.7 for ``rare_efficiency``,
    the threshold section's ``bulk_acceptance`` for ``bulk_acceptance``.
    """

    enabled: bool = True
    column: str | None = None
    proxy: bool | None = None  # None: a column not named true_* is a proxy
    edges: list[float] | None = None
    per_decade: int = Field(default=5, ge=1, le=100)
    range: tuple[float, float] | None = None
    rule: Literal["rare_efficiency", "bulk_acceptance"] | None = None
    value: float | None = Field(default=None, gt=0, lt=1)

    @model_validator(mode="after")
    def _edges(self) -> "BinningConfig":
        if self.edges is not None and self.range is not None:
            raise ValueError("give binning.edges or binning.range, not both")
        if self.edges is not None and (len(self.edges) < 2 or any(b <= a for a, b in zip(self.edges, self.edges[1:]))):
            raise ValueError(f"binning.edges must hold >= 2 strictly increasing values (got {self.edges})")
        if self.range is not None and not 0 < self.range[0] < self.range[1]:
            raise ValueError(f"binning.range must be [low, high] with 0 < low < high for log bins (got {list(self.range)})")
        return self


class SensitivityConfig(_Strict):
    """Differential sensitivity from the simulation record (``docs/energy.md``): ``enabled: auto``
    computes it when the data allow (a simulation record, true_energy bins, point-source gammas,
    gamma vs proton) and says why not otherwise; ``true`` makes a missing requirement an error."""

    enabled: bool | Literal["auto"] = "auto"
    obstime_h: float = Field(default=50.0, gt=0)
    on_region_radius_deg: float | None = Field(default=None, gt=0)


class MethodConfig(_Strict):
    name: str
    label: str | None = None  # display name, e.g. "flow (latent_norm)"; defaults to name
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def display(self) -> str:
        return self.label or self.name


#: Training budget of the default experiment's torch methods (`make demo`: 3 seeds x 6 methods on
#: 20k simulated valid events, 8k fitting rows per seed), sized to finish in a few minutes on 2
#: cores. Measured on the training/validation split of seed 0 (not on test figures): at these
#: sizes (4 couplings of 64 x 64) the flows' validation loss falls steeply for ~20 epochs and then
#: slowly (flow-classifier 10.8 at epoch 20, 9.1 at the cap of 60, 7.6 after 100 epochs; the
#: one-class flow 5.8 / 3.7 / 2.0); selfsup-flow and nn-classifier stop early (patience 10) before
#: the cap. The cap trades that last slow gain for time: the demo shows the comparison, the MAGIC
#: study (examples/magic_rare_flows.yaml) trains the full-size models to convergence.
_DEMO_TRAINING: dict[str, Any] = {"epochs": 60, "patience": 10, "batch_size": 256}
_DEMO_FLOW: dict[str, Any] = {"transforms": 4, "hidden": [64, 64]}


def _default_methods() -> list[MethodConfig]:
    """The seeds' comparison: normalizing flows vs an autoencoder, one-class vs two-class, with the
    supervised classifiers as references. Every one-class method names its ``fit_on`` in its label."""
    t = _DEMO_TRAINING
    return [
        MethodConfig(name="flow-classifier", label="flow-classifier (two-class, ensemble 1)",
                     params={"ensemble": 1, **_DEMO_FLOW, "training": t}),
        MethodConfig(name="selfsup-flow", label="selfsup-flow (two-class, fit_on bulk)",
                     params={"fit_on": "bulk", "warmup_epochs": 5, **_DEMO_FLOW, "training": t}),
        MethodConfig(name="flow", label="flow (one-class, fit_on rare)",
                     params={"fit_on": "rare", **_DEMO_FLOW, "training": t}),
        MethodConfig(name="autoencoder", label="autoencoder (one-class, fit_on rare)",
                     params={"fit_on": "rare", "training": t}),
        MethodConfig(name="nn-classifier", label="nn-classifier (supervised)",
                     params={"hidden": [128, 128], "training": t}),
        MethodConfig(name="gbdt", label="gbdt (supervised reference)"),
    ]  # fmt: skip


class ExperimentConfig(_Strict):
    name: str | None = None
    data: DataConfig = Field(default_factory=DataConfig)
    scenario: ScenarioConfig = Field(default_factory=ScenarioConfig)
    threshold: ThresholdConfig = Field(default_factory=ThresholdConfig)
    significance: SignificanceConfig = Field(default_factory=SignificanceConfig)
    binning: BinningConfig = Field(default_factory=BinningConfig)
    sensitivity: SensitivityConfig = Field(default_factory=SensitivityConfig)
    methods: list[MethodConfig] = Field(default_factory=_default_methods, min_length=1)

    @field_validator("binning", mode="before")
    @classmethod
    def _binning_off(cls, v: Any) -> Any:
        return {"enabled": v} if isinstance(v, bool) else v

    @field_validator("methods", mode="before")
    @classmethod
    def _names(cls, v: Any) -> Any:
        return [{"name": m} if isinstance(m, str) else m for m in v] if isinstance(v, list) else v

    @model_validator(mode="after")
    def _unique(self) -> "ExperimentConfig":
        names = [m.display for m in self.methods]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"methods listed twice: {dup}; give each a distinct 'label'")
        return self


def with_overrides(cfg: ExperimentConfig, seeds: list[int] | None = None, methods: list[str] | None = None) -> ExperimentConfig:
    """``cfg`` with its seeds and/or method names replaced, validated again (duplicates, ranges)."""
    raw = cfg.model_dump(exclude_unset=True)
    if seeds is not None:
        raw.setdefault("scenario", {})["seeds"] = seeds
    if methods is not None:
        raw["methods"] = methods
    return parse_config(raw, "command line")


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    return f"{loc}: {err['msg']}"


def parse_config(raw: dict[str, Any], source: str = "config") -> ExperimentConfig:
    """Validate a config mapping; one-line error naming the key."""
    try:
        return ExperimentConfig(**(raw or {}))
    except ValidationError as exc:
        raise RareflowError(f"{source}: {_first_error(exc)} (see SPEC 'Experiment config')") from None


def load_config(path: str | Path | None) -> ExperimentConfig:
    """Read and validate an experiment YAML; ``None`` gives the default simulated experiment.

    Relative ``data.path`` (and ``data.images``, ``data.simulate.camera_from``, ...) values are
    resolved against the config file's folder first, then the current directory.
    """
    if path is None:
        return ExperimentConfig()
    path = Path(path)
    if not path.exists():
        raise RareflowError(f"{path}: config file not found")
    if path.stat().st_size > MAX_BYTES:
        raise RareflowError(f"{path}: {path.stat().st_size} bytes is too large for a config (limit {MAX_BYTES})")
    raw = load_yaml(path.read_text(errors="replace"), str(path))
    if raw is not None and not isinstance(raw, dict):
        raise RareflowError(f"{path}: the config must be a mapping with data/scenario/methods keys")
    cfg = parse_config(raw or {}, str(path))
    d = cfg.data
    if d.path:
        d.path = _resolve(d.path, path)
    if isinstance(d.images, str):
        d.images = _resolve(d.images, path)
    if d.idx is not None:
        d.idx.bulk_path, d.idx.rare_path = _resolve(d.idx.bulk_path, path), _resolve(d.idx.rare_path, path)
    if d.simulate.camera_from:
        d.simulate.camera_from = _resolve(d.simulate.camera_from, path)
    return cfg


def _resolve(value: str, config_path: Path) -> str:
    """A relative path against the config file's folder when it exists there, else as given."""
    p = Path(value)
    if p.is_absolute():
        return value
    beside = (config_path.parent / p).resolve()
    return str(beside if beside.exists() else p)
