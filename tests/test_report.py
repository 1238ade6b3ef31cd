"""Reports and comparisons built from fake run folders (random but plausible metrics, predictions, thumbs)."""

from __future__ import annotations

import csv
import html
import json
import math
from pathlib import Path

import numpy as np
import pytest

from affectkit.labels import EXPRESSIONS
from affectkit.report import (
    compare_runs,
    comparison_table,
    plot_circumplex,
    plot_confusion,
    plot_sample_grid,
    plot_training_curves,
    write_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _metrics(rng: np.random.Generator, **over) -> dict:
    cm = rng.integers(0, 20, size=(8, 8)) + np.diag(rng.integers(20, 60, size=8))
    m = {
        "accuracy": 0.6,
        "f1_macro": 0.55,
        "f1_weighted": 0.58,
        "kappa": 0.5,
        "krippendorff_alpha": 0.49,
        "auc_roc": 0.88,
        "auc_pr": 0.6,
        "per_class": {
            n: {
                "precision": float(rng.uniform(0.3, 0.9)),
                "recall": float(rng.uniform(0.3, 0.9)),
                "f1": float(rng.uniform(0.3, 0.9)),
                "support": int(cm[i].sum()),
            }
            for i, n in enumerate(EXPRESSIONS)
        },
        "confusion_matrix": cm.tolist(),
        "valence": {"rmse": 0.4, "corr": 0.6, "sagr": 0.7, "ccc": 0.55},
        "arousal": {"rmse": 0.35, "corr": 0.5, "sagr": 0.72, "ccc": 0.45},
        "n": int(cm.sum()),
        "split": "test",
        "checkpoint": "ckpt/best.ckpt",
        "warnings": [],
    }
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(m.get(k), dict):
            m[k] = {**m[k], **v}
        else:
            m[k] = v
    return m


def make_run(
    root: Path,
    name: str = "run",
    *,
    cfg_name: str | None = "resnet18-affectnet",
    seed: int = 0,
    metrics: dict | None = None,
    epochs: int = 4,
    n: int = 96,
    n_thumbs: int = 16,
    csv_rows: bool = True,
    predictions: bool = True,
    config: bool = True,
    summary: bool = True,
) -> Path:
    rng = np.random.default_rng(seed)
    run = root / name
    (run / "eval").mkdir(parents=True)
    if config:
        lines = [
            "backbone: resnet18",
            "image_size: 112",
            f"epochs: {epochs}",
            "batch_size: 32",
            "lr: 0.0003",
            "data:",
            "  format: affectnet",
            "  root: /data/affectnet",
        ]
        if cfg_name:
            lines.append(f"name: {cfg_name}")
        (run / "config.yaml").write_text("\n".join(lines) + "\n")
    rows = []
    for e in range(1, epochs + 1):
        row = {"epoch": e, "lr": 3e-4 / e}
        for p, off in (("train", 0.0), ("val", 0.1)):
            row[f"{p}_loss"] = 2.0 / e + off
            row[f"{p}_loss_expression"] = 1.5 / e + off
            row[f"{p}_loss_valence"] = 0.3 / e + off
            row[f"{p}_loss_arousal"] = 0.2 / e + off
            row[f"{p}_accuracy"] = 0.3 + 0.1 * e - off
            row[f"{p}_f1_macro"] = 0.25 + 0.1 * e - off
            for t in ("valence", "arousal"):
                row[f"{p}_{t}_rmse"] = 0.6 / e + off
                row[f"{p}_{t}_ccc"] = 0.1 * e - off
        row["val_score"] = row["val_f1_macro"]
        row["train_f1_macro"] = ""  # an empty CSV cell must be skipped, not crash
        rows.append(row)
    if csv_rows:
        with (run / "metrics.csv").open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    (run / "metrics.json").write_text(json.dumps(rows))
    if summary:
        (run / "train_summary.json").write_text(
            json.dumps(
                {"best_epoch": epochs, "best_score": rows[-1]["val_score"], "wall_time_s": 3725.0, "epochs_run": epochs}
            )
        )
    (run / "eval" / "test_metrics.json").write_text(json.dumps(metrics if metrics is not None else _metrics(rng)))
    if predictions:
        y_true = rng.integers(0, 8, n)
        y_true[:3] = -1
        logits = rng.normal(size=(n, 8))
        logits[np.arange(n), np.clip(y_true, 0, 7)] += 2.0
        prob = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        vt, at = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n)
        vt[5] = np.nan
        ti = rng.choice(n, n_thumbs, replace=False)
        np.savez(
            run / "eval" / "test_predictions.npz",
            keys=np.array([f"img/{i:04d}.jpg" for i in range(n)]),
            y_true=y_true,
            y_prob=prob,
            valence_true=vt,
            valence_pred=np.clip(vt + rng.normal(0, 0.2, n), -1, 1),
            arousal_true=at,
            arousal_pred=np.clip(at + rng.normal(0, 0.2, n), -1, 1),
            thumbs=rng.integers(0, 255, (n_thumbs, 48, 48, 3), dtype=np.uint8),
            thumb_index=ti,
        )
    return run


# ------------------------------------------------------------------------------------------------ plots


def _is_png(p: Path, min_bytes: int = 5_000) -> bool:
    return p.is_file() and p.read_bytes()[:8] == PNG_MAGIC and p.stat().st_size > min_bytes


def test_plots_write_pngs_and_tolerate_nan(tmp_path):
    rng = np.random.default_rng(1)
    rows = [
        {"epoch": e, "train_loss": 1 / e, "val_loss": float("nan") if e == 2 else 1.2 / e, "lr": ""}
        for e in range(1, 5)
    ]
    assert _is_png(plot_training_curves(rows, tmp_path / "c.png"))
    cm = rng.integers(0, 30, (8, 8))
    cm[3] = 0  # a class without samples must not divide by zero
    assert _is_png(plot_confusion(cm, EXPRESSIONS, tmp_path / "cm.png"))
    k = 5
    va = rng.uniform(-1, 1, (k, 2))
    va[0] = np.nan
    out = plot_sample_grid(
        rng.integers(0, 255, (k, 32, 32, 3), dtype=np.uint8),
        [0, 1, -1, 3, 4],
        [0, 2, 1, 3, 4],
        va,
        va,
        tmp_path / "g.png",
        ncols=3,
    )
    assert _is_png(out)
    vp = rng.uniform(-1, 1, (50, 2))
    vt = vp.copy()
    vt[::4] = np.nan
    assert _is_png(plot_circumplex(vt, vp, tmp_path / "v.png", y_true=rng.integers(-1, 8, 50)))
    assert _is_png(plot_circumplex(None, vp, tmp_path / "v2.png"))


def test_plot_inputs_are_checked(tmp_path):
    with pytest.raises(ValueError, match="8x8"):
        plot_confusion(np.zeros((7, 7)), EXPRESSIONS, tmp_path / "x.png")
    with pytest.raises(ValueError, match="thumbnails"):
        plot_sample_grid(np.zeros((3, 8, 8, 3), np.uint8), [0, 1], [0, 1, 2], None, None, tmp_path / "x.png")


# ------------------------------------------------------------------------------------------------ report


def test_full_report_is_self_contained(tmp_path):
    run = make_run(tmp_path)
    out = write_report(run)
    assert out == run / "report" / "index.html"
    text = html.unescape(out.read_text())
    assert out.stat().st_size > 50_000  # five embedded figures
    assert text.count("data:image/png;base64,") == 5
    assert 'src="http' not in text and "<link" not in text and "<script" not in text
    for needle in (
        "resnet18-affectnet",
        "Cohen's Kappa",
        "Krippendorff",
        "AUC-PR",
        "SAGR",
        "CCC",
        "0.6000",
        "1h 02m 05s",
        "Contempt",
        "Best epoch",
    ):
        assert needle in text, needle
    assert "Collapse warnings" not in text
    md = (run / "report" / "report.md").read_text()
    for png in ("training_curves.png", "confusion_matrix.png", "samples.png", "circumplex.png", "per_class.png"):
        assert f"]({png})" in md
        assert _is_png(run / "report" / png)


def test_collapse_warning_and_nan_shown(tmp_path):
    warn = "Predictions collapsed: 97% of test samples predicted as Happy"
    m = _metrics(
        np.random.default_rng(0), warnings=[warn], auc_roc=float("nan"), kappa=None, arousal={"ccc": float("nan")}
    )
    run = make_run(tmp_path, metrics=m)
    text = html.unescape(write_report(run).read_text())
    assert 'class="warn"' in text and warn in text
    assert text.index(warn) < text.index("Headline metrics")  # shown before the tables, not buried
    assert "<td>AUC-ROC</td><td>n/a</td>" in text and "<td>Cohen's Kappa</td><td>n/a</td>" in text
    assert ">nan<" not in text.lower() and ">none<" not in text.lower()
    assert warn in (run / "report" / "report.md").read_text()


def test_report_with_missing_files(tmp_path):
    run = make_run(tmp_path, predictions=False, csv_rows=False, config=False, summary=False)
    (run / "metrics.json").unlink()
    (run / "eval" / "test_metrics.json").unlink()
    text = write_report(run).read_text()
    assert "No config.yaml" in text and "training curves are left out" in text
    assert "evaluation metrics are missing" in text and "sample grid and circumplex are left out" in text
    assert "data:image/png;base64" not in text
    assert not (run / "report" / "training_curves.png").exists()


def test_report_reads_metrics_json_and_computes_confusion(tmp_path):
    m = _metrics(np.random.default_rng(0))
    del m["confusion_matrix"]
    run = make_run(tmp_path, csv_rows=False, metrics=m, n_thumbs=0)
    text = write_report(run).read_text()
    assert (run / "report" / "training_curves.png").is_file()  # from metrics.json
    assert (run / "report" / "confusion_matrix.png").is_file()  # from predictions
    assert "computed from the predictions file" in text
    assert "sample grid left out" in text


def test_corrupt_file_names_it(tmp_path):
    run = make_run(tmp_path, predictions=False)
    (run / "eval" / "test_metrics.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"test_metrics.json"):
        write_report(run)


def test_run_name_with_markup_is_escaped_in_report_and_comparison(tmp_path):
    """A run name comes from a user's config: HTML shows it as text, Markdown keeps its pipe inside one cell."""
    name = "<script>alert(1)</script>|x"
    a = make_run(tmp_path, "a", cfg_name=name, predictions=False)
    b = make_run(tmp_path, "b", predictions=False)
    report = write_report(a).read_text()
    paths = compare_runs([a, b], tmp_path / "cmp")
    for page in (report, paths["html"].read_text()):
        assert "<script" not in page
        assert "<td>&lt;script&gt;alert(1)&lt;/script&gt;|x</td>" in page
    for md in ((a / "report" / "report.md").read_text(), paths["md"].read_text()):
        assert "| <script>alert(1)</script>\\|x |" in md


# ------------------------------------------------------------------------------------------------ compare


def test_compare_marks_best(tmp_path):
    rng = np.random.default_rng(0)
    a = make_run(
        tmp_path,
        "a",
        cfg_name="same",
        predictions=False,
        metrics=_metrics(rng, accuracy=0.7, valence={"rmse": 0.5}, kappa=0.4, arousal={"ccc": None}),
    )
    b = make_run(
        tmp_path,
        "b",
        cfg_name="same",
        predictions=False,
        metrics=_metrics(rng, accuracy=0.6, valence={"rmse": 0.3}, kappa=0.4, arousal={"ccc": 0.2}),
    )
    c = make_run(
        tmp_path,
        "c",
        cfg_name=None,
        predictions=False,
        metrics=_metrics(
            rng, accuracy=float("nan"), valence={"rmse": float("nan")}, kappa=0.1, arousal={"ccc": float("nan")}
        ),
    )
    table = {r["metric"]: r for r in comparison_table([a, b, c])}
    cols = ["same (a)", "same (b)", "resnet18"]
    assert [k for k in table["Accuracy"] if k not in ("metric", "better", "best")] == cols
    assert table["Accuracy"]["best"] == ["same (a)"]  # higher wins, NaN ignored
    assert table["Valence RMSE"]["best"] == ["same (b)"]  # lower wins
    assert table["Kappa"]["best"] == ["same (a)", "same (b)"]  # ties all marked
    assert table["Arousal CCC"]["best"] == ["same (b)"]  # null and NaN never best
    assert table["n"]["best"] == [] and table["Training time (s)"]["same (a)"] == 3725.0

    paths = compare_runs([a, b, c], tmp_path / "cmp")
    md = paths["md"].read_text()
    assert "| Accuracy | **0.7000** | 0.6000 | n/a |" in md
    assert "| Valence RMSE | 0.5000 | **0.3000** | n/a |" in md
    assert "| Training time | 1h 02m 05s |" in md and "| n | " in md
    page = paths["html"].read_text()
    assert '<b class="best">0.3000</b>' in page and 'src="http' not in page
    rows = {r["metric"]: r for r in csv.DictReader(paths["csv"].open())}
    assert rows["Valence RMSE"]["best"] == "same (b)" and rows["Kappa"]["best"] == "same (a);same (b)"
    assert rows["Accuracy"]["resnet18"] == "" and float(rows["Accuracy"]["same (a)"]) == 0.7
    assert rows["Arousal RMSE"]["best"] == "same (a);same (b);resnet18"
    assert rows["Training time (s)"]["same (a)"] == "3725" and rows["n"]["best"] == ""


def test_compare_all_nan_row_and_missing_eval(tmp_path):
    rng = np.random.default_rng(0)
    a = make_run(tmp_path, "a", predictions=False, metrics=_metrics(rng, auc_pr=None))
    b = make_run(tmp_path, "b", predictions=False, metrics=_metrics(rng, auc_pr=float("nan")))
    table = {r["metric"]: r for r in comparison_table([a, b])}
    assert table["AUC-PR"]["best"] == []
    assert all(math.isnan(table["AUC-PR"][c]) for c in ("resnet18-affectnet (a)", "resnet18-affectnet (b)"))
    (b / "eval" / "test_metrics.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"run .*[/\\]b: no evaluation metrics"):
        comparison_table([a, b])


def test_float_labels_with_nan_and_length_mismatch(tmp_path):
    m = _metrics(np.random.default_rng(0))
    del m["confusion_matrix"]
    run = make_run(tmp_path, metrics=m, n=40, n_thumbs=4)
    path = run / "eval" / "test_predictions.npz"
    d = dict(np.load(path))
    y = d["y_true"].astype(float)
    y[y < 0] = np.nan
    np.savez(path, **{**d, "y_true": y})
    write_report(run)
    assert _is_png(run / "report" / "confusion_matrix.png") and _is_png(run / "report" / "samples.png")
    np.savez(path, **{**d, "y_prob": d["y_prob"][:-1]})
    text = write_report(run).read_text()
    assert "differ in length" in text
    assert not (run / "report" / "samples.png").exists()  # stale figure from the first report removed
