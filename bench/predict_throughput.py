"""Prediction throughput: images/s on a folder of face crops (torch eager fp32, torch bf16+channels_last,
ONNX Runtime) with ``detect=False``, and faces/s with MTCNN detection on full photos.

Crops and photos are made from scikit-image's astronaut (jittered crops; heads pasted into 1280x960 canvases).
Timings include decoding, alignment and preprocessing, i.e. what ``affectkit predict`` does per image.
Without ``--ckpt`` a random-weight model of ``--backbone`` is used (throughput does not depend on weights).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from affectkit.machine import describe


def make_crops(folder: Path, n: int, size: int, seed: int = 0) -> list[Path]:
    from skimage import data

    rng = np.random.default_rng(seed)
    src = Image.fromarray(data.astronaut())
    paths = []
    for i in range(n):
        dx, dy, s = rng.integers(-15, 16), rng.integers(-15, 16), rng.integers(130, 170)
        cx, cy = 224 + dx, 117 + dy
        im = src.crop((cx - s // 2, cy - s // 2, cx + s // 2, cy + s // 2)).resize((size, size), Image.BILINEAR)
        if rng.random() < 0.5:
            im = im.transpose(Image.FLIP_LEFT_RIGHT)
        paths.append(folder / f"crop_{i:04d}.jpg")
        im.save(paths[-1], quality=92)
    return paths


def make_photos(folder: Path, n: int, faces_per_photo: int = 3, seed: int = 0) -> list[Path]:
    from skimage import data

    rng = np.random.default_rng(seed)
    head = Image.fromarray(data.astronaut()[10:270, 110:340])
    paths = []
    for i in range(n):
        canvas = Image.new("RGB", (1280, 960), tuple(int(v) for v in rng.integers(60, 200, 3)))
        for k in range(faces_per_photo):
            s = float(rng.uniform(0.5, 1.1))
            h = head.resize((int(head.width * s), int(head.height * s)), Image.BILINEAR)
            x = int(k * 1280 / faces_per_photo + rng.integers(0, max(1, 1280 // faces_per_photo - h.width)))
            y = int(rng.integers(0, 960 - h.height))
            canvas.paste(h, (x, y))
        paths.append(folder / f"photo_{i:03d}.jpg")
        canvas.save(paths[-1], quality=90)
    return paths


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (lazy loads, allocator, oneDNN primitive cache)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", help="a trained .ckpt (default: random weights of --backbone)")
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--input-size", type=int, default=None, help="override the model input size")
    ap.add_argument("-n", "--crops", type=int, default=128, help="face crops in the folder")
    ap.add_argument("--photos", type=int, default=8, help="full photos for the detection figure")
    ap.add_argument("--faces-per-photo", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats (best is reported)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch/onnxruntime intra-op threads")
    args = ap.parse_args(argv)
    print(describe(), flush=True)

    import torch

    from affectkit.inference.export import export_model
    from affectkit.inference.predictor import Predictor

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.ckpt:
        from affectkit.training.checkpoint import load_model

        model, meta = load_model(args.ckpt)
        margin = meta.get("face_margin", 0.2)
    else:
        from affectkit.models import create_model

        model, margin = create_model(args.backbone, weights="none").eval(), 0.2
    if args.input_size:
        model.preprocess = {**model.preprocess, "input_size": args.input_size}
    size = int(model.preprocess["input_size"])
    tmp = Path(tempfile.mkdtemp(prefix="predict_bench_"))
    try:
        crops = make_crops(tmp, args.crops, size)
        photos = make_photos(tmp, args.photos, args.faces_per_photo)
        onnx_path = export_model(model, tmp / "model.onnx", face_margin=margin)
        import copy

        variants = {
            "torch fp32": Predictor.from_model(
                model, face_margin=margin, batch_size=args.batch_size, device=args.device
            ),
            "torch bf16+channels_last": Predictor.from_model(
                copy.deepcopy(model),
                face_margin=margin,
                batch_size=args.batch_size,
                device=args.device,
                precision="bf16",
                channels_last=True,
            ),
            "onnxruntime fp32": Predictor.load(
                onnx_path, batch_size=args.batch_size, threads=args.threads, device=args.device
            ),
        }
        print(
            f"model {getattr(model, 'backbone_name', args.backbone)} @ {size}px, batch {args.batch_size}, "
            f"torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}, device {args.device}"
        )
        print(f"{'face crops, detect=False':<34}{'images/s':>10}{'ms/image':>10}")
        for name, p in variants.items():
            dt = timed(lambda p=p: p.predict_batch(crops, detect=False), args.repeats)
            print(f"  {name:<32}{len(crops) / dt:>10.1f}{1000 * dt / len(crops):>10.2f}")
        # Model-only figure: preprocessed batch in memory, no decode/alignment.
        x = variants["torch fp32"].normalise(np.stack([np.asarray(Image.open(c).convert("RGB")) for c in crops]))
        print(f"{'model forward only (in memory)':<34}{'images/s':>10}{'ms/image':>10}")
        for name, p in variants.items():

            def run(p=p):
                for i in range(0, len(x), args.batch_size):
                    p.backend(x[i : i + args.batch_size])

            dt = timed(run, args.repeats)
            print(f"  {name:<32}{len(x) / dt:>10.1f}{1000 * dt / len(x):>10.2f}")
        p = variants["torch fp32"]
        n_faces = sum(len(f) for f in p.predict_batch(photos))
        dt = timed(lambda: p.predict_batch(photos), max(1, args.repeats - 1))
        t_det = timed(lambda: [p.detector.detect(p_) for p_ in map(np.asarray, map(Image.open, photos))], 1)
        print(
            f"detection on {len(photos)} photos 1280x960 ({n_faces} faces found of "
            f"{len(photos) * args.faces_per_photo} pasted):"
        )
        print(
            f"  end to end (torch fp32): {n_faces / dt:.1f} faces/s, {len(photos) / dt:.2f} photos/s; "
            f"MTCNN alone {1000 * t_det / len(photos):.0f} ms/photo"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
