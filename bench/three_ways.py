"""One model's accuracy on one split measured three ways, through the real commands: `affectkit evaluate`,
`affectkit predict --no-detect` on the image files, and `affectkit export` + `predict --backend onnx --no-detect`.

They must agree (same preprocessing contract, same fp32 compute). Labels come from evaluation's per-image
predictions file, so the three figures are over exactly the same images.

    python bench/three_ways.py RUN_DIR --data ../shared/datasets/ferplus --split val
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from affectkit.machine import describe

AK = [sys.executable, "-m", "affectkit.cli"]


def run(*args) -> float:
    t0 = time.perf_counter()
    subprocess.run([*AK, *map(str, args)], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def rows(path: Path, key: str = "source") -> dict[str, dict[str, str]]:
    with open(path, newline="") as f:
        return {r[key]: r for r in csv.DictReader(f)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="run folder")
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="val")
    args = ap.parse_args(argv)
    print(describe())
    tmp = Path(tempfile.mkdtemp(prefix="three_ways_"))
    t_eval = run(
        "evaluate", args.run, "--data", args.data, "--split", args.split, "--out", tmp / f"{args.split}_metrics.json"
    )
    ref = rows(tmp / f"{args.split}_predictions.csv")
    files = sorted(ref)
    t_pred = run("predict", args.run, *files, "--no-detect", "--out", tmp / "torch.csv")
    run("export", args.run, "--format", "onnx", "--out", tmp / "model.onnx")
    t_onnx = run("predict", tmp / "model.onnx", *files, "--no-detect", "--backend", "onnx", "--out", tmp / "onnx.csv")
    from affectkit.labels import EXPRESSIONS

    y = np.array([int(ref[f]["label"]) for f in files])
    ok = y >= 0
    names = {n: i for i, n in enumerate(EXPRESSIONS)}
    print(f"{args.split} of {args.data}: {int(ok.sum())} labelled images, model {args.run}")
    base = None
    for what, table, dt in (
        ("evaluate", ref, t_eval),
        ("predict --no-detect", rows(tmp / "torch.csv"), t_pred),
        ("predict --backend onnx --no-detect", rows(tmp / "onnx.csv"), t_onnx),
    ):
        pred = np.array([names[table[f]["expression"]] for f in files])
        probs = np.array([[float(table[f][f"prob_{n}"]) for n in EXPRESSIONS] for f in files])
        acc = float(np.mean(pred[ok] == y[ok]))
        if base is None:
            base = probs
        print(f"  {what:<36} accuracy {acc:.4f}   max |p - p_evaluate| {np.abs(probs - base).max():.1e}   {dt:.0f} s")


if __name__ == "__main__":
    main()
