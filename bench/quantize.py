"""int8 vs fp32 ONNX: accuracy on a split and ONNX Runtime throughput, through `affectkit export`.

Exports the run's model twice (`export` and `export --quantize int8`, calibrated on its own training images),
then runs both with ONNX Runtime on the split's face crops (the contract's preprocessing, no detection):
majority-vote accuracy, agreement of the two models' predictions, file sizes, and faces/s at batch 1 (one
face, latency) and batch 64, with the session's intra-op threads = the cores.

    python bench/quantize.py RUN_DIR --data ../shared/datasets/ferplus --split val
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from affectkit.machine import describe

AK = [sys.executable, "-m", "affectkit.cli"]


def faces_of_split(run: Path, data: str, split: str, limit: int | None):
    from affectkit.evaluation import split_samples

    contract, samples = split_samples(run, data, split)
    samples = [s for s in samples if s.expression is not None][:limit]
    x = contract.to_tensor(np.stack([contract.to_array(s.image, box=s.box) for s in samples]))
    return x, np.array([s.expression for s in samples])


def run_model(path: Path, x: np.ndarray, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    logits = np.concatenate([sess.run(["logits"], {name: x[i : i + 64]})[0] for i in range(0, len(x), 64)])
    speed = {}
    for bs in (1, 64):
        batch = x[:bs]
        for _ in range(3):
            sess.run(["logits"], {name: batch})
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 3.0:
            sess.run(["logits"], {name: batch})
            reps += 1
        speed[bs] = reps * bs / (time.perf_counter() - t0)
    return logits.argmax(1), speed


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="run folder")
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="val")
    ap.add_argument("--limit", type=int, default=None, help="first N labelled images of the split")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args(argv)
    print(describe())
    tmp = Path(tempfile.mkdtemp(prefix="quantize_"))
    t0 = time.perf_counter()
    subprocess.run([*AK, "export", args.run, "--out", tmp / "fp32.onnx"], check=True, stdout=subprocess.DEVNULL)
    t1 = time.perf_counter()
    subprocess.run(
        [*AK, "export", args.run, "--out", tmp / "int8.onnx", "--quantize", "int8"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    t2 = time.perf_counter()
    print(f"export fp32 {t1 - t0:.0f} s, export --quantize int8 {t2 - t1:.0f} s (256 calibration images)")
    x, y = faces_of_split(args.run, args.data, args.split, args.limit)
    print(f"{args.split} of {args.data}: {len(y)} labelled faces, {x.shape[-1]} px, ORT threads {args.threads}")
    preds = {}
    for name in ("fp32", "int8"):
        path = tmp / f"{name}.onnx"
        pred, speed = run_model(path, x, args.threads)
        preds[name] = pred
        print(
            f"  {name}: accuracy {np.mean(pred == y):.4f}  size {path.stat().st_size / 1e6:.1f} MB  "
            f"batch 1 {speed[1]:.0f} faces/s ({1000 / speed[1]:.2f} ms/face)  batch 64 {speed[64]:.0f} faces/s"
        )
    print(f"  int8 and fp32 agree on {np.mean(preds['int8'] == preds['fp32']):.4f} of the faces")


if __name__ == "__main__":
    main()
