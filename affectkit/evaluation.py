"""Evaluate a trained model on a split: every metric, collapse checks, predictions for the report."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Literal, NamedTuple

import lightning as L
import numpy as np

from affectkit.eval_outputs import MAX_THUMBS, pick_thumbs, write_outputs, write_predictions_csv

__all__ = ["MAX_THUMBS", "PRECISIONS", "evaluate", "pick_thumbs", "split_samples", "write_predictions_csv"]


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


PRECISIONS: dict[str, Literal["32-true", "bf16-mixed"]] = {"fp32": "32-true", "bf16": "bf16-mixed"}


def _eval_records(cfg: dict, data, format, label_mode, numeric_classes):
    """(records, data as shown, whether it is (part of) the run's own data, the dataset's name unless it is all
    of the run's data: it names the output files). A multi-dataset run's data is all its
    datasets (keys prefixed as in training), or the one of them ``data`` names."""
    from affectkit.data import read_dataset
    from affectkit.data.sources import combine, data_sources, is_multi, read_sources

    run_data = cfg.get("data")
    read_kw = dict(
        label_mode=label_mode or cfg.get("label_mode", "majority"), peak_frames=cfg.get("ckplus_peak_frames", 3)
    )
    if is_multi(run_data):
        sources = data_sources(run_data, cfg.get("format"))
        if data is not None:
            sources = [s for s in sources if Path(s.path).resolve() == Path(data).resolve()]
        if sources:
            nc = bool(cfg.get("numeric_classes")) if numeric_classes is None else numeric_classes
            records = combine(read_sources(sources, numeric_classes=nc, **read_kw))
            if data is not None:  # one of the run's datasets: named as such (its keys keep their prefix)
                return records, str(data), True, sources[0].name
            return records, "+".join(s.name for s in sources), True, None
        run_data = None
    data = str(data) if data is not None else run_data
    if data is None:
        raise ValueError("no data given: pass --data PATH")
    same_data = run_data is not None and Path(data).resolve() == Path(run_data).resolve()
    if numeric_classes is None:
        numeric_classes = bool(cfg.get("numeric_classes")) and same_data and format in (None, "image_folder")
    records = read_dataset(
        data, format=format or (cfg.get("format") if same_data else None), numeric_classes=numeric_classes, **read_kw
    )
    return records, data, same_data, None if same_data else Path(data).resolve().name


def _eval_parts(records, split: str, run_dir: Path | None, cfg: dict, same_data: bool) -> dict[str, list[str]]:
    """The keys of each part: every sample (``all``), the run's saved split on its own data, the dataset's
    own part (it needs none of the others: a FER+ copy holding only FER2013Test is fine), else a fresh split."""
    from affectkit.data.sources import is_multi
    from affectkit.data.splits import defined_part, load_split, make_split

    if split == "all":
        return {"all": [s.key for s in records.samples]}
    if run_dir is not None and (run_dir / "split.json").is_file():
        parts = load_split(run_dir / "split.json")
        if is_multi(cfg.get("data")):  # the datasets read may be a subset of the run's
            have = {s.key for s in records.samples}
            return {k: [key for key in v if key in have] for k, v in parts.items()}
        return dict(parts)
    # the dataset's own val/test are what make_split would give too (its train may lose the carved val)
    own = defined_part(records, split) if split in ("val", "test") else None
    if own:
        return {split: own}
    return make_split(
        records,
        test_size=cfg.get("test_size", 0.2),
        val_size=cfg.get("val_size", 0.1),
        seed=cfg.get("seed", 0),
        split_by=cfg.get("split_by", "auto") if same_data else "auto",
    )


def evaluate(
    run_or_ckpt: str | Path,
    data: str | Path | None = None,
    format: str | None = None,
    split: str = "test",
    out: str | Path | None = None,
    tta: bool = False,
    batch_size: int = 64,
    devices: Any = 1,
    strategy: str = "auto",
    accelerator: str = "auto",
    num_nodes: int = 1,
    label_mode: str | None = None,
    progress: bool = False,
    precision: str = "fp32",
    numeric_classes: bool | None = None,
    restrict_classes: bool = False,
) -> dict[str, Any]:
    """Metrics of a checkpoint on one split of a dataset.

    ``run_or_ckpt`` is a run folder (its best checkpoint and its saved split are used) or a ``.ckpt`` file. The
    split is the run's saved split file when the data is the run's data; otherwise the dataset's own split named
    ``split`` (or ``all``: every usable sample). Images go through the preprocessing contract stored in the
    checkpoint, as ``predict`` does, and the model computes in ``precision`` ("fp32", the default of ``predict``
    too, or "bf16"). Writes ``<run>/eval/<split>_metrics.json`` (or ``out``), ``<split>_predictions.npz`` (for the
    report) and ``<split>_predictions.csv`` (one row per image: path, label, predicted expression, probabilities,
    valence, arousal: ``predict``'s columns for them). Returns the metrics dict: classification keys at top level,
    ``valence`` and ``arousal`` objects (None for heads the model was not trained for), ``n``, ``heads`` and
    ``warnings`` (collapse checks). ``numeric_classes`` is ``read_dataset``'s (default: the run's, on its data).

    Another dataset may label fewer classes or heads: ``dataset`` in the metrics names its classes and heads,
    heads it lacks get no metrics, and ``accuracy_restricted`` (predictions restricted to its classes) is added
    when it lacks classes; ``restrict_classes`` makes the restricted predictions the primary ones (see
    ``affectkit.scope``). Its results default to ``<run>/eval/<dataset>-<split>_metrics.json``.
    """
    from affectkit.training.run import quiet_lightning

    quiet_lightning()
    _check_options(precision, out)
    ck = _load_run_checkpoint(Path(run_or_ckpt))
    records, data, same_data, name = _eval_records(ck.cfg, data, format, label_mode, numeric_classes)
    keys, scope = _eval_keys(records, data, split, ck.run_dir if same_data else None, ck.cfg, same_data, name)
    where = dict(accelerator=accelerator, devices=devices, strategy=strategy, num_nodes=num_nodes)
    trainer_kw = dict(where, precision=PRECISIONS[precision], enable_progress_bar=progress)
    trainer, dm, res = _run_test(ck, records, keys, tta, batch_size, trainer_kw)
    arrays = _collect(res, ck.heads, scope, restrict_classes)
    if trainer.is_global_zero:
        for w in res["warnings"]:
            warnings.warn(f"collapse check: {w}", stacklevel=2)
    res.update(_run_info(ck, split, data, tta, precision, scope))
    res = _jsonable(res)
    if trainer.is_global_zero:
        # another dataset's results go beside the run's own, never over them
        stem = split if name is None else f"{name}-{split}"
        # a shipped model lives inside the installed package: its results go to ./<model name>/eval
        home = ck.run_dir or (Path(ck.path.stem) if ck.path.suffix == ".safetensors" else ck.path.parent)
        out_json = Path(out) if out else (home / "eval" / f"{stem}_metrics.json")
        write_outputs(out_json, res, dm.datasets["test"], arrays, ck.heads, ck.cfg["image_size"])
        res["metrics_path"] = str(out_json)
    return res


def split_samples(run_or_ckpt: str | Path, data: str | Path | None = None, split: str = "test") -> tuple[Any, list]:
    """(the checkpoint's preprocessing contract, the samples of ``split``) chosen exactly as :func:`evaluate`
    chooses them: the run's saved split on its own data, else the dataset's own part, else a fresh split."""
    ck = _load_run_checkpoint(Path(run_or_ckpt))
    records, data, same_data, name = _eval_records(ck.cfg, data, None, None, None)
    keys, _ = _eval_keys(records, data, split, ck.run_dir if same_data else None, ck.cfg, same_data, name)
    wanted = set(keys)
    return ck.contract, [s for s in records.samples if s.key in wanted]


def _run_info(ck: _Checkpoint, split: str, data, tta: bool, precision: str, scope: dict) -> dict[str, Any]:
    """What was evaluated, and how: the metrics' own description."""
    from affectkit.preprocess import describe_heads

    return {
        "split": split,
        "checkpoint": str(ck.path),
        "data": str(data),
        "tta": tta,
        "backbone": ck.cfg.get("backbone"),
        "precision": precision,
        "heads": ck.heads,
        "heads_note": describe_heads(ck.heads),
        "preprocess": ck.contract.to_dict(),
        "dataset": scope,
    }


class _Checkpoint(NamedTuple):
    path: Path
    run_dir: Path | None  # None for a checkpoint outside a run folder
    ckpt: dict[str, Any]
    cfg: dict[str, Any]  # the training config
    contract: Any  # the preprocessing contract (affectkit.preprocess.Preprocess)
    heads: dict[str, bool]  # which heads were trained


def _check_options(precision: str, out: str | Path | None) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    if out is not None and Path(out).suffix.lower() != ".json":
        raise ValueError(
            f"{out}: --out names the metrics file and must end in .json (the per-image predictions "
            "are written beside it)"
        )


def _load_run_checkpoint(src: Path) -> _Checkpoint:
    """The checkpoint ``src`` names (a run folder or a ``.ckpt``), with what evaluation needs of it."""
    from affectkit.preprocess import restore
    from affectkit.training.checkpoint import META_KEY, read_checkpoint, resolve_checkpoint

    ckpt_path = resolve_checkpoint(src)
    run_dir = src if src.is_dir() else (ckpt_path.parent.parent if ckpt_path.parent.name == "checkpoints" else None)
    ckpt = read_checkpoint(ckpt_path)
    meta = ckpt[META_KEY]
    cfg = dict(meta.get("config") or {})
    if not cfg:
        raise ValueError(
            f"{ckpt_path}: the checkpoint carries no training config; evaluate needs one written by affectkit train"
        )
    contract, heads = restore(meta)
    return _Checkpoint(ckpt_path, run_dir, ckpt, cfg, contract, heads)


def _eval_keys(records, data, split: str, run_dir: Path | None, cfg: dict, same_data: bool, name: str | None):
    """(the keys of the evaluated part, the dataset's scope: which classes and heads it labels)."""
    from affectkit.scope import dataset_scope

    parts = _eval_parts(records, split, run_dir, cfg, same_data)
    if split not in parts or not parts[split]:
        raise ValueError(f"{data}: no '{split}' part (have: {', '.join(k for k, v in parts.items() if v)})")
    return parts[split], dataset_scope(records.samples, data, records.format, split, name)


def _run_test(ck: _Checkpoint, records, keys: list[str], tta: bool, batch_size: int, trainer_kw: dict[str, Any]):
    """The checkpoint's model run over ``keys`` by a Lightning test loop (``trainer_kw``: where and how it
    computes): (trainer, data module, its results)."""
    from affectkit.data.module import AffectDataModule
    from affectkit.training.checkpoint import load_strict
    from affectkit.training.module import AffectModule
    from affectkit.training.run import quiet_lightning

    cfg = dict(ck.cfg, weights="none")  # weights come from the checkpoint
    module = AffectModule(cfg, preprocess=ck.contract.to_dict(), heads=ck.heads, tta=tta)
    load_strict(module, ck.ckpt["state_dict"], ck.path, cfg.get("backbone"))
    dm = AffectDataModule(
        records,
        {"test": keys},
        image_size=ck.contract,
        batch_size=batch_size,
        cache=cfg.get("cache", True),
        num_workers=cfg.get("num_workers", -1),
    )
    trainer = L.Trainer(**trainer_kw, logger=False, enable_model_summary=False, enable_checkpointing=False)
    with warnings.catch_warnings():
        quiet_lightning()
        trainer.test(module, datamodule=dm, verbose=False)
    return trainer, dm, module.test_results


def _collect(res: dict, heads: dict[str, bool], scope: dict, restrict_classes: bool) -> dict[str, np.ndarray]:
    """Take the per-sample arrays out of ``res`` (returned), with the reported probabilities, and put the
    collapse checks in ``res['warnings']``; untrained heads get no metrics."""
    from affectkit.collapse import detect_collapse
    from affectkit.scope import apply_scope

    arrays = res.pop("_arrays")
    # the reported predictions: restricted to the dataset's classes with restrict_classes
    arrays["probs"] = probs = apply_scope(res, arrays, scope, restrict_classes)
    va = arrays["va"]
    # a head never trained (no labels in the split, or loss weight 0, as on FER+) is not a collapse
    for key in ("valence", "arousal"):  # an untrained head's output is noise: no metrics for it
        if not heads[key]:
            res[key] = None
    checked = [
        va[:, j] if res.get(f"n_{key}", 0) > 0 and heads[key] else None for j, key in enumerate(("valence", "arousal"))
    ]
    res["warnings"] = detect_collapse(probs, *checked)
    return arrays
