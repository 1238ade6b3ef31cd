"""What an evaluation covers: the classes and heads a dataset has, and predictions restricted to its classes.

A model predicts all 8 AffectNet expressions; a dataset may label fewer (FER2013, RAF-DB and ExpW have no
Contempt) or only some heads (AFEW-VA has valence/arousal only, FER+ no valence/arousal). Its classes are the
expression ids its labels use (all its samples, not just the evaluated part); its heads are the labels it has.

What the metrics do with a class the dataset lacks:

* accuracy, kappa and Krippendorff's alpha count a prediction of it as wrong (the model was free to predict it);
* ``f1_macro`` averages per-class F1 over the dataset's classes that occur in the truth or the predictions; a
  class the dataset lacks is left out even when predicted (the plain rule would average in its F1 of 0);
  with all 8 classes in the dataset this is the usual value;
* AUC-ROC and AUC-PR average over the classes present in the truth, so absent classes never count;
* ``accuracy_restricted`` is the accuracy when the probabilities of the absent classes are zeroed and the rest
  renormalised (the model then chooses among the dataset's classes only); ``restrict=True`` makes these
  restricted predictions the primary ones (every expression metric, the per-image files and the report).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from affectkit.labels import EXPRESSIONS, NUM_EXPRESSIONS


def dataset_scope(samples, path: str | Path, fmt: str | None, split: str, name: str | None = None) -> dict[str, Any]:
    """The ``dataset`` block of ``metrics.json``: name, path, format, split, classes (names, AffectNet order),
    class ids, absent classes and heads (which labels the dataset has)."""
    ids = sorted({s.expression for s in samples if s.expression is not None})
    heads = {
        "expression": bool(ids),
        "valence": any(s.valence is not None for s in samples),
        "arousal": any(s.arousal is not None for s in samples),
    }
    absent = [c for c in range(NUM_EXPRESSIONS) if c not in ids] if ids else []
    return {
        "name": name or Path(path).resolve().name,
        "path": str(path),
        "format": fmt,
        "split": split,
        "classes": [EXPRESSIONS[c] for c in ids],
        "class_ids": ids,
        "absent_classes": [EXPRESSIONS[c] for c in absent],
        "heads": heads,
    }


def restrict_probs(probs: np.ndarray, class_ids: list[int]) -> np.ndarray:
    """Probabilities with the classes outside ``class_ids`` zeroed and each row renormalised to sum 1."""
    out = np.zeros_like(probs)
    out[:, class_ids] = probs[:, class_ids]
    total = out.sum(1, keepdims=True)
    return out / np.where(total > 0, total, 1.0)  # softmax rows are never all zero; guard anyway


def _accuracy(y: np.ndarray, probs: np.ndarray) -> float:
    m = y >= 0
    return float((probs[m].argmax(1) == y[m]).mean()) if m.any() else float("nan")


def _f1_macro(y: np.ndarray, probs: np.ndarray, class_ids: list[int]) -> float:
    from sklearn.metrics import f1_score

    m = y >= 0
    t, p = y[m], probs[m].argmax(1)
    labels = sorted(set(class_ids) & (set(t.tolist()) | set(p.tolist())))
    if not labels:
        return float("nan")
    return float(f1_score(t, p, labels=labels, average="macro", zero_division=0.0))


def apply_scope(
    res: dict[str, Any], arrays: dict[str, np.ndarray], scope: dict[str, Any], restrict: bool
) -> np.ndarray:
    """Adjust the metrics ``res`` (in place) to the dataset's classes and heads; returns the probabilities
    to report (restricted ones with ``restrict``). Heads the dataset lacks get no metrics (None)."""
    probs, y = arrays["probs"], arrays["expression"]
    for key in ("valence", "arousal"):
        if not scope["heads"][key]:
            res[key] = None
    ids = scope["class_ids"]
    scope["restricted"] = bool(restrict and scope["absent_classes"])
    if not scope["absent_classes"]:
        return probs
    restricted = restrict_probs(probs, ids)
    if scope["restricted"]:
        from affectkit.metrics import classification_metrics

        unrestricted = res.get("accuracy")
        res.update(classification_metrics(y, restricted))
        res["accuracy_unrestricted"] = unrestricted
        probs = restricted
    res["f1_macro"] = _f1_macro(y, probs, ids)
    res["accuracy_restricted"] = _accuracy(y, restricted)
    return probs
