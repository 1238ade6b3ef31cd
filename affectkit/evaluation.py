"""Evaluate a trained model on a split: every metric, collapse checks, predictions for the report."""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np

THUMBS_PER_CLASS = 4
MAX_THUMBS = 32


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


def pick_thumbs(y_true: np.ndarray, seed: int = 0) -> np.ndarray:
    """Indices for the sample grid: up to 4 per class, so every expression shows, then random fill."""
    rng = np.random.default_rng(seed)
    picked: list[int] = []
    for c in range(8):
        idx = np.flatnonzero(y_true == c)
        picked.extend(rng.permutation(idx)[:THUMBS_PER_CLASS].tolist())
    rest = np.setdiff1d(np.arange(len(y_true)), picked)
    picked.extend(rng.permutation(rest)[: max(0, MAX_THUMBS - len(picked))].tolist())
    return np.asarray(sorted(picked[:MAX_THUMBS]), dtype=np.int64)


PRECISIONS: dict[str, Literal["32-true", "bf16-mixed"]] = {"fp32": "32-true", "bf16": "bf16-mixed"}


def evaluate(run_or_ckpt: str | Path, data: str | Path | None = None, format: str | None = None,
             split: str = "test", out: str | Path | None = None, tta: bool = False, batch_size: int = 64,
             devices: Any = 1, strategy: str = "auto", accelerator: str = "auto", num_nodes: int = 1,
             label_mode: str | None = None, progress: bool = False, precision: str = "fp32",
             numeric_classes: bool | None = None) -> dict[str, Any]:
    """Metrics of a checkpoint on one split of a dataset.

    ``run_or_ckpt`` is a run folder (its best checkpoint and its saved split are used) or a ``.ckpt`` file. The
    split is the run's saved split file when the data is the run's data; otherwise the dataset's own split named
    ``split`` (or ``all``: every usable sample). Images go through the preprocessing contract stored in the
    checkpoint, as ``predict`` does, and the model computes in ``precision`` ("fp32", the default of ``predict``
    too, or "bf16"). Writes ``<run>/eval/<split>_metrics.json`` (or ``out``), ``<split>_predictions.npz`` (for the
    report) and ``<split>_predictions.csv`` (one row per image: path, label, predicted expression, probabilities,
    valence, arousal — the columns of ``predict``). Returns the metrics dict: classification keys at top level,
    ``valence`` and ``arousal`` objects (None for heads the model was not trained for), ``n``, ``heads`` and
    ``warnings`` (collapse checks). ``numeric_classes`` is ``read_dataset``'s (default: the run's, on its data).
    """
    from affectkit.collapse import detect_collapse
    from affectkit.data import read_dataset
    from affectkit.data.module import AffectDataModule
    from affectkit.data.splits import load_split, make_split
    from affectkit.preprocess import describe_heads, restore
    from affectkit.training.checkpoint import META_KEY, load_strict, read_checkpoint, resolve_checkpoint
    from affectkit.training.module import AffectModule
    from affectkit.training.run import quiet_lightning

    quiet_lightning()
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    if out is not None and Path(out).suffix.lower() != ".json":
        raise ValueError(f"{out}: --out names the metrics file and must end in .json (the per-image predictions "
                         "are written beside it)")

    src = Path(run_or_ckpt)
    ckpt_path = resolve_checkpoint(src)
    run_dir = src if src.is_dir() else (ckpt_path.parent.parent if ckpt_path.parent.name == "checkpoints" else None)
    ckpt = read_checkpoint(ckpt_path)
    meta = ckpt[META_KEY]
    cfg = dict(meta.get("config") or {})
    if not cfg:
        raise ValueError(f"{ckpt_path}: the checkpoint carries no training config; evaluate needs one written by "
                         "affectkit train")
    contract, heads = restore(meta)
    data = str(data) if data is not None else cfg.get("data")
    if data is None:
        raise ValueError("no data given: pass --data PATH")
    same_data = cfg.get("data") is not None and Path(data).resolve() == Path(cfg["data"]).resolve()
    if numeric_classes is None:
        numeric_classes = bool(cfg.get("numeric_classes")) and same_data and format in (None, "image_folder")
    records = read_dataset(data, format=format or (cfg.get("format") if same_data else None),
                           label_mode=label_mode or cfg.get("label_mode", "majority"),
                           numeric_classes=numeric_classes, peak_frames=cfg.get("ckplus_peak_frames", 3))
    if split == "all":
        parts = {"all": [s.key for s in records.samples]}
    elif same_data and run_dir is not None and (run_dir / "split.json").is_file():
        parts = load_split(run_dir / "split.json")
    else:
        parts = make_split(records, test_size=cfg.get("test_size", 0.2), val_size=cfg.get("val_size", 0.1),
                           seed=cfg.get("seed", 0), split_by=cfg.get("split_by", "auto") if same_data else "auto")
    if split not in parts or not parts[split]:
        raise ValueError(f"{data}: no '{split}' part (have: {', '.join(k for k, v in parts.items() if v)})")
    parts = {"test": parts[split]}

    cfg["weights"] = "none"  # weights come from the checkpoint
    module = AffectModule(cfg, preprocess=contract.to_dict(), heads=heads, tta=tta)
    load_strict(module, ckpt["state_dict"], ckpt_path, cfg.get("backbone"))
    dm = AffectDataModule(records, parts, image_size=contract, batch_size=batch_size,
                          cache=cfg.get("cache", True), num_workers=cfg.get("num_workers", -1))
    trainer = L.Trainer(accelerator=accelerator, devices=devices, strategy=strategy, num_nodes=num_nodes,
                        precision=PRECISIONS[precision], logger=False, enable_progress_bar=progress,
                        enable_model_summary=False, enable_checkpointing=False)
    with warnings.catch_warnings():
        quiet_lightning()
        trainer.test(module, datamodule=dm, verbose=False)
    res = module.test_results
    arrays = res.pop("_arrays")
    probs, va = arrays["probs"], arrays["va"]
    # a head never trained (no labels in the split, or loss weight 0, as on FER+) is not a collapse
    for key in ("valence", "arousal"):  # an untrained head's output is noise: no metrics for it
        if not heads[key]:
            res[key] = None
    checked = [va[:, j] if res.get(f"n_{key}", 0) > 0 and heads[key] else None
               for j, key in enumerate(("valence", "arousal"))]
    res["warnings"] = detect_collapse(probs, *checked)
    if trainer.is_global_zero:
        for w in res["warnings"]:
            warnings.warn(f"collapse check: {w}", stacklevel=2)
    res.update({"split": split, "checkpoint": str(ckpt_path), "data": str(data), "tta": tta,
                "backbone": cfg.get("backbone"), "precision": precision, "heads": heads,
                "heads_note": describe_heads(heads), "preprocess": contract.to_dict()})
    res = _jsonable(res)
    if trainer.is_global_zero:
        out_json = Path(out) if out else ((run_dir or ckpt_path.parent) / "eval" / f"{split}_metrics.json")
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(res, indent=1))
        ds = dm.datasets["test"]
        thumb_index = pick_thumbs(arrays["expression"])
        thumbs = np.stack([ds.samples_image(int(i)) for i in arrays["index"][thumb_index]]) if len(thumb_index) else \
            np.zeros((0, cfg["image_size"], cfg["image_size"], 3), np.uint8)
        stem = out_json.name[:-len("_metrics.json")] if out_json.name.endswith("_metrics.json") else out_json.stem
        write_predictions_csv(out_json.with_name(f"{stem}_predictions.csv"), ds, arrays, heads)
        np.savez_compressed(
            out_json.with_name(f"{stem}_predictions.npz"),
            keys=np.array([ds.samples[int(i)].key for i in arrays["index"]]), y_true=arrays["expression"],
            y_prob=probs, valence_true=arrays["valence"], arousal_true=arrays["arousal"], thumbs=thumbs,
            # an untrained head's output is noise: NaN, so reports draw no circumplex and print no number
            valence_pred=va[:, 0] if heads["valence"] else np.full(len(va), np.nan),
            arousal_pred=va[:, 1] if heads["arousal"] else np.full(len(va), np.nan), thumb_index=thumb_index,
        )
        res["metrics_path"] = str(out_json)
    return res


def write_predictions_csv(path: Path, ds, arrays: dict[str, np.ndarray], heads: dict[str, bool]) -> Path:
    """One row per evaluated image: ``key``, ``source`` (the image path), ``label`` (true expression id, -1 if
    none), then ``predict``'s columns (``expression``, ``prob_<Name>``, ``valence``, ``arousal``; empty for heads
    the model was not trained for), so evaluation and prediction can be compared image by image."""
    import csv
    import os

    from affectkit.labels import EXPRESSIONS

    probs, va = arrays["probs"], arrays["va"]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["key", "source", "label", "expression"] + [f"prob_{n}" for n in EXPRESSIONS]
                   + ["valence", "arousal"])
        for row, i in enumerate(arrays["index"]):
            s = ds.samples[int(i)]
            src = "" if isinstance(s.image, np.ndarray) else os.fspath(s.image)
            p = probs[row]
            w.writerow([s.key, src, int(arrays["expression"][row]),
                        EXPRESSIONS[int(np.argmax(p))] if heads["expression"] else ""]
                       + ([f"{v:.6f}" for v in p] if heads["expression"] else [""] * len(EXPRESSIONS))
                       + [f"{va[row, 0]:.6f}" if heads["valence"] else "",
                          f"{va[row, 1]:.6f}" if heads["arousal"] else ""])
    return path
