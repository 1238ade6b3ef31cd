"""Turn a training run into a shipped model: fp16 weights, a model card measured on the shipped file itself, and
its ``index.json`` entry (``scripts/ship_model.py`` is the command line)."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from affectkit.labels import EXPRESSIONS
from affectkit.pretrained import HERE, sha256, write_safetensors

CARD_TEMPLATE = "card.md.j2"
LOCAL_KEYS = ("data", "out", "resume", "split_file", "cache_dir", "progress")
MODEL_FILE_KEYS = ("teacher", "initial_checkpoint")  # models the run started from: named by file name only


def ship_model(
    run: str | Path,
    name: str,
    data: str | Path,
    version: int,
    summary: str,
    command: str,
    dest: str | Path = HERE,
    split: str = "val",
    n_boot: int = 1000,
    seed: int = 0,
) -> Path:
    """Write ``<dest>/<name>.safetensors`` from the best checkpoint of ``run``, evaluate that file on ``split``
    of ``data`` (metrics with percentile-bootstrap CIs), time it through ONNX Runtime, and write the card
    ``<name>.md`` and the ``index.json`` entry. ``command`` is how the run was trained (the card's recipe).
    Returns the weights path."""
    from affectkit.training.checkpoint import read_checkpoint

    dest = Path(dest)
    ckpt = read_checkpoint(run)
    meta = dict(ckpt["affectkit"])
    # where the run read its data and wrote its files is this machine's business, not the shipped file's
    meta["config"] = _portable_config(meta.get("config") or {})
    ckpt = {**ckpt, "affectkit": meta}
    weights = write_safetensors(ckpt, dest / f"{name}.safetensors", extra={"name": name, "version": version})
    weights.chmod(0o644)
    digest = sha256(weights)
    _update_index(dest, name, version, weights.name, digest, summary, None)  # the new file's hash, before it is read
    with tempfile.TemporaryDirectory() as tmp:
        scores = _scores(weights, data, split, Path(tmp), n_boot, seed)
        speed = _latency(weights, Path(tmp))
    facts = {
        "name": name,
        "version": version,
        "summary": summary,
        "command": command,
        "sha256": digest,
        "size_mb": weights.stat().st_size / 2**20,
        "backbone": meta["backbone"],
        "n_params": sum(int(np.prod(v.shape)) for v in ckpt["state_dict"].values()),
        "preprocess": meta["preprocess"],
        "config": meta.get("config") or {},
        "history": _history(Path(run)),
        "data": str(data),
        "split": split,
        "scores": scores,
        "speed": speed,
        "date": time.strftime("%Y-%m-%d"),
    }
    (dest / f"{name}.md").write_text(render_card(facts), encoding="utf-8")
    _update_index(dest, name, version, weights.name, digest, summary, scores)
    return weights


def _portable_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The run's config without this machine's paths: local keys dropped, the models it learned from (teacher,
    initial checkpoint) by file name (a shipped model's name stays as it is)."""
    out = {k: v for k, v in cfg.items() if k not in LOCAL_KEYS}
    for key in MODEL_FILE_KEYS:
        v = out.get(key)
        if isinstance(v, list):
            out[key] = [Path(str(m)).name for m in v]
        elif v is not None:
            out[key] = Path(str(v)).name
    return out


def _scores(weights: Path, data, split: str, tmp: Path, n_boot: int, seed: int) -> dict[str, Any]:
    """Metrics of the shipped file (not of the checkpoint it came from) on ``split``, with bootstrap CIs."""
    from affectkit.evaluation import evaluate
    from affectkit.metrics import classification_metrics

    res = evaluate(weights, data=data, split=split, out=tmp / f"{split}_metrics.json")
    arr = np.load(tmp / f"{split}_predictions.npz")
    m = classification_metrics(arr["y_true"], arr["y_prob"], ci=True, n_boot=n_boot, seed=seed)
    m["n"] = int(len(arr["y_true"]))
    m["dataset"] = res.get("dataset") or {}
    return m


def _latency(weights: Path, tmp: Path, repeats: int = 300) -> dict[str, Any]:
    """Median ms per face (one preprocessed crop → probabilities) through ONNX Runtime, 2 threads."""
    import onnxruntime as ort

    from affectkit.inference.export import export_onnx
    from affectkit.machine import describe

    onnx = export_onnx(weights, tmp / "model.onnx")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(onnx), sess_options=opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    size = sess.get_inputs()[0].shape[-1]
    x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    for _ in range(20):
        sess.run(["probs"], {name: x})
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        sess.run(["probs"], {name: x})
        times.append(time.perf_counter() - t)
    return {"ms_per_face": 1000 * float(np.median(times)), "machine": describe()}


def _history(run: Path) -> list[dict[str, float]]:
    path = run / "metrics.json"
    if not path.is_file():
        return []
    rows = json.loads(path.read_text())
    return [
        {"epoch": r["epoch"], "val_accuracy": r.get("val_accuracy"), "val_f1_macro": r.get("val_f1_macro")}
        for r in rows
    ]


def render_card(facts: dict[str, Any]) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("affectkit.pretrained", "."),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ci"] = lambda v: f"[{v[0]:.3f}, {v[1]:.3f}]"
    return env.get_template(CARD_TEMPLATE).render(expressions=EXPRESSIONS, **facts)


def _update_index(dest: Path, name: str, version: int, file: str, digest: str, summary: str, scores) -> None:
    path = dest / "index.json"
    index = json.loads(path.read_text()) if path.is_file() else {}
    index[name] = {
        "version": version,
        "file": file,
        "sha256": digest,
        "summary": summary,
        "metrics": {k: round(float(scores[k]), 4) for k in ("accuracy", "f1_macro", "kappa", "auc_roc")}
        if scores
        else {},
    }
    path.write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
