"""The shipped model (`affectkit models`): FER2013Valid accuracy by every path a user takes, and its speed.

Accuracy (majority-vote labels) through `affectkit evaluate ferplus --data D --split val` (the Lightning
evaluation), `affectkit predict DIR --no-detect` (torch) and `affectkit predict DIR --no-detect --backend onnx`:
the three must agree to 3 decimals. Speed: ms per face (one crop to probabilities, ONNX Runtime, batch 1), faces/s
on crops (files to predictions, no detection, torch and ONNX) and photos/s with MTCNN detection on two public-domain
photos (scikit-image's astronaut, matplotlib's Grace Hopper).

    python bench/shipped.py --data ../shared/datasets/ferplus [--model ferplus] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from affectkit.machine import describe

AK = [sys.executable, "-m", "affectkit.cli"]


def labelled_valid(model: str, data: str, limit: int | None) -> dict[str, int]:
    from affectkit.evaluation import split_samples

    _, samples = split_samples(model, data, "val")
    return {str(s.image): s.expression for s in samples if s.expression is not None}


def predict_accuracy(model: str, folder: Path, labels: dict[str, int], backend: str, tmp: Path) -> tuple[float, float]:
    from affectkit.labels import EXPRESSIONS

    out = tmp / f"{backend}.json"
    t = time.perf_counter()
    subprocess.run([*AK, "predict", "--model", model, str(folder), "--no-detect", "--backend", backend,
                    "--out", str(out)], check=True, capture_output=True)  # fmt: skip
    seconds = time.perf_counter() - t
    rows = {str(Path(r["source"]).resolve()): r["expression"] for r in json.loads(out.read_text())}
    hits = [rows[str(Path(p).resolve())] == EXPRESSIONS[y] for p, y in labels.items()]
    return float(np.mean(hits)), len(rows) / seconds


def evaluate_accuracy(model: str, data: str, tmp: Path) -> float:
    out = tmp / "ev" / "val_metrics.json"
    subprocess.run([*AK, "evaluate", model, "--data", data, "--split", "val", "--out", str(out)],
                   check=True, capture_output=True)  # fmt: skip
    return json.loads(out.read_text())["accuracy"]


def latency_ms(model: str, repeats: int = 300) -> float:
    from affectkit.inference.predictor import Predictor

    p = Predictor.load(model, backend="onnx", threads=2)
    x = np.random.default_rng(0).standard_normal((1, 3, p.input_size, p.input_size)).astype(np.float32)
    for _ in range(20):
        p.backend(x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        p.backend(x)
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def photos_per_s(model: str, backend: str, rounds: int = 5) -> tuple[float, int]:
    import matplotlib
    from PIL import Image
    from skimage.data import astronaut

    from affectkit.inference.predictor import Predictor

    hopper = np.asarray(
        Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").convert("RGB")
    )
    photos = [astronaut(), hopper]
    p = Predictor.load(model, backend=backend)
    faces = sum(len(f) for f in p.predict_batch(photos))  # warm-up (loads MTCNN)
    t = time.perf_counter()
    for _ in range(rounds):
        p.predict_batch(photos)
    return rounds * len(photos) / (time.perf_counter() - t), faces


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="FER+ folder (FER2013Valid is its val split)")
    ap.add_argument("--model", default="ferplus")
    a = ap.parse_args()
    print(describe(), flush=True)
    labels = labelled_valid(a.model, a.data, None)
    folder = Path(next(iter(labels))).parent
    with tempfile.TemporaryDirectory() as tmp:
        acc_eval = evaluate_accuracy(a.model, a.data, Path(tmp))
        acc_torch, fps_torch = predict_accuracy(a.model, folder, labels, "torch", Path(tmp))
        acc_onnx, fps_onnx = predict_accuracy(a.model, folder, labels, "onnx", Path(tmp))
    print(f"FER2013Valid, {len(labels)} faces with a majority label:")
    print(f"  accuracy: evaluate {acc_eval:.4f} | predict --no-detect torch {acc_torch:.4f} | onnx {acc_onnx:.4f}")
    agree = round(acc_eval, 3) == round(acc_torch, 3) == round(acc_onnx, 3)
    print(f"  equal to 3 decimals: {agree}")
    print(f"  predict --no-detect, files to rows incl. start-up: torch {fps_torch:.0f} faces/s, onnx {fps_onnx:.0f}")
    print(f"latency, one face (crop to probabilities), ONNX Runtime 2 threads: {latency_ms(a.model):.2f} ms")
    for backend in ("torch", "onnx"):
        rate, faces = photos_per_s(a.model, backend)
        print(f"photos with detection (MTCNN + model, {faces} faces in 2 photos), {backend}: {rate:.1f} photos/s")
    print(describe(), flush=True)


if __name__ == "__main__":
    main()
