"""Reading a run folder: config, per-epoch metrics, training summary, evaluation metrics and predictions.

A run folder holds (each file optional; what is missing becomes a note for the report):
``config.yaml``, ``metrics.csv`` or ``metrics.json`` (one row per epoch), ``train_summary.json``,
``eval/<split>_metrics.json`` and ``eval/<split>_predictions.npz``. Unreadable (corrupt) files raise
``ValueError`` naming the file.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from affectkit.report.plots import to_float


@dataclass
class RunData:
    """Everything read from one run folder; absent parts are empty and explained in ``notes``."""

    run_dir: Path
    split: str
    config: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] | None = None
    predictions: dict[str, np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / "eval" / f"{self.split}_metrics.json"

    @property
    def predictions_path(self) -> Path:
        return self.run_dir / "eval" / f"{self.split}_predictions.npz"

    @property
    def display_name(self) -> str:
        """Config ``name``, else ``backbone``, else the folder name."""
        for key in ("name", "backbone"):
            value = self.config.get(key)
            if value not in (None, ""):
                return str(value)
        return self.run_dir.name

    def best_epoch(self) -> tuple[float, float]:
        """(best epoch, its val_score): from ``train_summary.json`` when given, else the max ``val_score`` row."""
        epoch, score = to_float(self.summary.get("best_epoch")), to_float(self.summary.get("best_score"))
        if math.isfinite(epoch):
            return epoch, score
        scores = np.array([to_float(r.get("val_score")) for r in self.rows], dtype=float)
        if not np.isfinite(scores).any():
            return math.nan, math.nan
        i = int(np.nanargmax(scores))
        ep = to_float(self.rows[i].get("epoch"))
        return (ep if math.isfinite(ep) else float(i + 1)), float(scores[i])

    def epochs_run(self) -> float:
        value = to_float(self.summary.get("epochs_run"))
        return value if math.isfinite(value) else (float(len(self.rows)) if self.rows else math.nan)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc


def _read_rows(run_dir: Path, notes: list[str]) -> list[dict[str, Any]]:
    csv_path, json_path = run_dir / "metrics.csv", run_dir / "metrics.json"
    if csv_path.is_file():
        try:
            with csv_path.open(newline="") as fh:
                rows = [dict(r) for r in csv.DictReader(fh)]
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ValueError(f"{csv_path}: not a readable CSV ({exc})") from exc
    elif json_path.is_file():
        rows = _read_json(json_path)
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError(f"{json_path}: expected a list of per-epoch objects")
    else:
        notes.append("No metrics.csv / metrics.json: training curves are left out.")
        return []
    if not rows:
        notes.append("The per-epoch metrics file has no rows: training curves are left out.")
    return rows


def _read_predictions(path: Path, notes: list[str]) -> dict[str, np.ndarray]:
    if not path.is_file():
        notes.append(f"No eval/{path.name}: sample grid and circumplex are left out.")
        return {}
    out: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            for key in npz.files:
                try:
                    out[key] = npz[key]
                except ValueError:  # object arrays need pickle, which we never allow
                    notes.append(f"eval/{path.name}: array {key!r} is a pickled object array, skipped.")
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from exc
    return out


def load_run(run_dir: str | Path, split: str = "test") -> RunData:
    """Read every report input of ``run_dir`` that exists; see the module docstring for the layout."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist")
    run = RunData(run_dir=run_dir, split=split)
    cfg_path = run_dir / "config.yaml"
    if cfg_path.is_file():
        import yaml

        try:
            cfg = yaml.safe_load(cfg_path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{cfg_path}: not valid YAML ({exc})") from exc
        if not isinstance(cfg, dict):
            raise ValueError(f"{cfg_path}: expected a mapping at the top level, got {type(cfg).__name__}")
        run.config = cfg
    else:
        run.notes.append("No config.yaml: run settings are unknown.")
    run.rows = _read_rows(run_dir, run.notes)
    summary_path = run_dir / "train_summary.json"
    if summary_path.is_file():
        summary = _read_json(summary_path)
        if not isinstance(summary, dict):
            raise ValueError(f"{summary_path}: expected a JSON object")
        run.summary = summary
    if run.metrics_path.is_file():
        metrics = _read_json(run.metrics_path)
        if not isinstance(metrics, dict):
            raise ValueError(f"{run.metrics_path}: expected a JSON object")
        run.metrics = metrics
    else:
        run.notes.append(f"No eval/{run.metrics_path.name}: evaluation metrics are missing (run evaluation first).")
    run.predictions = _read_predictions(run.predictions_path, run.notes)
    return run


def metric_value(metrics: dict[str, Any] | None, *keys: str) -> float:
    """Nested metric lookup (e.g. ``"valence", "rmse"``) as float; absent or null gives NaN."""
    node: Any = metrics
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return math.nan
        node = node[key]
    return to_float(node)
