"""Load test of the web demo on loopback: requests/s and latency percentiles of ``POST /predict``.

Starts ``affectkit serve`` (the command) on 127.0.0.1 with a model (``--model``; default a random-weight
ResNet18 checkpoint at 64 px written to a temporary folder), then ``--clients`` threads each send ``--requests``
uploads of one face crop (``?detect=0``, or with detection on a photo with ``--detect``). Bounded in count and
time; it talks to 127.0.0.1 only and stops by itself.

    python bench/serve_load.py --clients 8 --requests 25
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from affectkit.machine import describe


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="run folder, .ckpt or .onnx (default: random resnet18, 64 px)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=25, help="per client")
    ap.add_argument("--detect", action="store_true", help="upload a 640x440 photo and detect (MTCNN)")
    ap.add_argument("--max-seconds", type=float, default=300.0)
    args = ap.parse_args(argv)

    from skimage import data

    from clitools import serve_cli

    tmp = Path(tempfile.mkdtemp(prefix="serve_load_"))
    model = args.model
    if model is None:
        from affectkit.models import create_model
        from affectkit.training.checkpoint import save_model_checkpoint

        net = create_model("resnet18", weights="none")
        model = save_model_checkpoint(net, tmp / "model.ckpt", {"image_size": 64})
    face = data.astronaut()[30:230, 150:330]
    img = face
    if args.detect:
        img = np.full((440, 640, 3), 120, np.uint8)
        img[100:300, 240:420] = face
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=92)
    payload = buf.getvalue()
    print(describe())
    with serve_cli(model, cwd=tmp) as (base, info):
        url = f"{base}/predict?detect={int(args.detect)}"
        deadline = time.time() + args.max_seconds

        def client(_):
            lat, codes = [], []
            for _ in range(args.requests):
                if time.time() > deadline:
                    break
                req = urllib.request.Request(url, data=payload, method="POST", headers={"Content-Type": "image/jpeg"})
                t0 = time.perf_counter()
                try:
                    with urllib.request.urlopen(req, timeout=60) as r:
                        r.read()
                        codes.append(r.status)
                except urllib.error.HTTPError as e:
                    codes.append(e.code)
                lat.append(time.perf_counter() - t0)
            return lat, codes

        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(args.clients) as ex:
            results = list(ex.map(client, range(args.clients)))
        wall = time.perf_counter() - t0
    lat = np.array([x for r in results for x in r[0]]) * 1000
    codes = [c for r in results for c in r[1]]
    ok = codes.count(200)
    print(
        f"model {info['backbone']} ({info['backend']}) at {info['input_size']} px, max_concurrent "
        f"{info['max_concurrent']}, {'MTCNN on a 640x440 photo' if args.detect else 'a face crop, detect=0'}"
    )
    print(
        f"{args.clients} clients x {args.requests} requests: {len(codes)} sent in {wall:.1f} s, {ok} ok "
        f"({ok / wall:.1f} req/s), {codes.count(503)} busy (503), others {len(codes) - ok - codes.count(503)}; "
        f"latency p50 {np.percentile(lat, 50):.0f} ms, p99 {np.percentile(lat, 99):.0f} ms"
    )


if __name__ == "__main__":
    main()
