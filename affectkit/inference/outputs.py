"""Prediction rows and their files: one row per face (or per empty/unreadable input), written as CSV or JSON.

Row convention (see ``ROW_FIELDS``): ``source`` path, ``frame`` (0 for images), ``time_s`` (frame time in
seconds for videos, None for images), box ``x1, y1, x2, y2`` in pixels, detector ``score``, ``expression``,
``prob_<Name>`` for the 8 expressions, ``valence``, ``arousal`` and ``status``: "ok", "no_face" (other fields
empty) or "error: <reason>" (unreadable input).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from affectkit.inference.predictor import FacePrediction
from affectkit.labels import EXPRESSIONS

ROW_FIELDS = (
    ["source", "frame", "time_s", "x1", "y1", "x2", "y2", "score", "expression"]
    + [f"prob_{n}" for n in EXPRESSIONS]
    + ["valence", "arousal", "status"]
)


def prediction_row(
    source: str, frame: int, time_s: float | None, pred: FacePrediction | None, status: str = "ok"
) -> dict[str, Any]:
    """One output row (see module docstring); ``pred=None`` gives an empty row with ``status``."""
    row: dict[str, Any] = dict.fromkeys(ROW_FIELDS)
    row.update(source=source, frame=frame, time_s=None if time_s is None else round(float(time_s), 4), status=status)
    if pred is None:
        row["expression"] = ""
        return row
    # a head the model was not trained for stays empty (None): no number that looks like a measurement
    row.update(
        x1=round(pred.box[0], 2),
        y1=round(pred.box[1], 2),
        x2=round(pred.box[2], 2),
        y2=round(pred.box[3], 2),
        score=round(pred.score, 6),
        expression=pred.expression or "",
        valence=_round(pred.valence),
        arousal=_round(pred.arousal),
    )
    for name in EXPRESSIONS:
        row[f"prob_{name}"] = _round(pred.probabilities.get(name))
    return row


def _round(v: float | None) -> float | None:
    return None if v is None else round(float(v), 6)


def output_format(out: str | Path) -> str:
    """ "csv" or "json" from the file extension; anything else is a ValueError naming the path."""
    out = Path(out)
    ext = out.suffix.lower()
    if ext not in (".csv", ".json"):
        raise ValueError(f"{out}: output must end in .csv or .json")
    return ext[1:]


def write_rows(rows: list[dict[str, Any]], out: str | Path) -> Path:
    """Write rows as CSV (``.csv``) or a JSON list (``.json``), by extension."""
    out = Path(out)
    fmt = output_format(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        with out.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(ROW_FIELDS), extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in ROW_FIELDS})
    else:
        out.write_text(json.dumps(rows, indent=1) + "\n")
    return out
