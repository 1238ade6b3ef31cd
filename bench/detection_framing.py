"""How a detected face is framed compared with a dataset's own crops, and what detection costs in accuracy.

Each dataset crop (the image cropped by its box, exactly as training takes it) is upscaled to ``--upscale`` px so
MTCNN sees a face of photo-like size, then detected. For every candidate margin the framed square (the
``Preprocess`` rule for detected faces: side ``max(w, h) * (1 + 2 * margin)`` about the box centre) is compared
with the crop itself (the whole upscaled image): the median IoU says how alike the two framings are, and the
best margin is the one to train with (``face_margin`` in the config; it is stored with the model).

With ``--model`` it also predicts the same images two ways — ``--no-detect`` on the crops as they are, and MTCNN
detection on the upscaled crops framed with ``--margin`` (default: the best one found) — and prints the accuracy
of both on the images where a face was found.

    python bench/detection_framing.py --data ../shared/datasets/ferplus --split val --model RUN_DIR
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from PIL import Image

from affectkit.machine import describe


def iou(a, b) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--format", default=None)
    ap.add_argument("--split", default="val", help="the dataset's own split to use (or 'all')")
    ap.add_argument("--upscale", type=int, default=192)
    ap.add_argument("--limit", type=int, default=None, help="at most this many images (evenly spaced)")
    ap.add_argument("--margins", default="-0.05,-0.025,0,0.02,0.05,0.075,0.1,0.15,0.2,0.3")
    ap.add_argument("--model", default=None, help="run folder, .ckpt or .onnx: also measure accuracy")
    ap.add_argument("--margin", type=float, default=None, help="margin for the accuracy figure (default: best)")
    ap.add_argument("--threshold", type=float, default=0.9)
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (1 is fastest for MTCNN on small images when other work shares the CPU)",
    )
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from affectkit.data import read_dataset
    from affectkit.data.images import load_image
    from affectkit.inference.faces import FaceDetector
    from affectkit.preprocess import face_square

    print(describe())
    records = read_dataset(args.data, format=args.format)
    samples = [s for s in records.samples if args.split == "all" or s.split == args.split]
    if args.limit and len(samples) > args.limit:
        samples = [samples[int(i)] for i in np.linspace(0, len(samples) - 1, args.limit)]
    margins = [float(m) for m in args.margins.split(",")]
    det = FaceDetector(min_confidence=args.threshold)
    S = args.upscale
    whole = (0.0, 0.0, float(S), float(S))
    ious = {m: [] for m in margins}
    found: list[tuple[int, np.ndarray, object]] = []  # (sample index, upscaled image, face)
    t0 = time.perf_counter()
    for i, s in enumerate(samples):
        crop = load_image(s.image, box=s.box)
        big = np.asarray(Image.fromarray(crop).resize((S, S), Image.BICUBIC))
        faces = det.detect(big)
        if not faces:
            continue
        face = faces[0]
        found.append((i, big, face))
        for m in margins:
            cx, cy, side = face_square(face.box, m)
            ious[m].append(iou((cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2), whole))
    dt = time.perf_counter() - t0
    print(
        f"{len(samples)} images of {args.data} ({args.split}), upscaled to {S} px: MTCNN found a face in "
        f"{len(found)} ({100 * len(found) / max(1, len(samples)):.1f} %), {1000 * dt / max(1, len(samples)):.0f} "
        f"ms/image"
    )
    print(f"{'margin':>8}{'median IoU':>12}{'IoU p10':>9}")
    for m in margins:
        v = np.asarray(ious[m])
        print(f"{m:>8.3f}{np.median(v):>12.3f}{np.percentile(v, 10):>9.3f}")
    best = max(margins, key=lambda m: np.median(ious[m]))
    print(f"best margin {best} (median IoU {np.median(ious[best]):.3f})")
    if not args.model:
        return

    from affectkit.inference.predictor import Predictor

    margin = best if args.margin is None else args.margin
    p = Predictor.load(args.model, face_margin=margin)
    y = np.array([samples[i].expression if samples[i].expression is not None else -1 for i, _, _ in found])
    crops = [load_image(samples[i].image, box=samples[i].box) for i, _, _ in found]
    plain = p.predict_batch(crops, detect=False)
    framed = p.predict_faces([b for _, b, _ in found], [[f] for _, _, f in found])
    ok = y >= 0
    acc_plain = np.mean(np.array([r[0].expression_id for r in plain])[ok] == y[ok])
    acc_det = np.mean(np.array([r[0].expression_id for r in framed])[ok] == y[ok])
    print(
        f"accuracy on the {int(ok.sum())} labelled images with a detected face: --no-detect {acc_plain:.4f}, "
        f"MTCNN on {S} px + margin {margin} {acc_det:.4f} (model {args.model}, contract margin "
        f"{p.face_margin})"
    )


if __name__ == "__main__":
    main()
