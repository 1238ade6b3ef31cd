"""What `affectkit demo` costs on this CPU: training and inference images/s of each demo backbone at the demo's
size, per precision, memory layout and batch size, and the demo's total time those rates predict.

    python bench/demo_speed.py                  # this CPU as it is
    python bench/demo_speed.py --emulate-avx2   # PyTorch's kernels limited to AVX2 (oneDNN, MKL and ATen): fp32
    python bench/demo_speed.py --compile        # each setting also through torch.compile (and how long that took)

A rate is the best of ``--repeats`` timings of ``--steps`` real optimisation steps (``affectkit.demo.step_rates``:
forward, multi-task loss, backward, AdamW step on in-memory batches; one warm-up step first). The prediction uses
the demo's own estimator (training part forward and backward, validation part forward, every epoch, then the
test split) with the demo config's epochs and split sizes; data generation and reports add about a minute.
Every figure depends on what else runs: the machine line (CPU, flags, threads, load) is printed with them.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time

from affectkit.machine import AVX2_ONLY  # imports no torch: the limits can still take effect below


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backbones", default="vgg16_bn,resnet50")
    ap.add_argument("--size", type=int, default=None, help="image size (default: the demo's)")
    ap.add_argument("--batch-sizes", default="16,32")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--emulate-avx2", action="store_true", help="re-run with the kernels limited to AVX2")
    ap.add_argument("--compile", action="store_true", help="also time each setting through torch.compile")
    args = ap.parse_args()
    if args.emulate_avx2 and any(os.environ.get(k) != v for k, v in AVX2_ONLY.items()):
        # The limits are read when torch loads: set them, then start again in a fresh interpreter.
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **AVX2_ONLY})

    from affectkit.demo import DEMO_N, DEMO_SIZE, config_path, estimate_seconds, minutes, step_rates
    from affectkit.machine import describe
    from affectkit.training.config import load_config
    from affectkit.training.run import default_precision

    size = args.size or DEMO_SIZE
    auto = default_precision()
    precisions = [auto] if auto == "32-true" else [auto, "32-true"]
    print(describe())
    print(f"precision: auto picks {auto} here; demo size {size} px")
    best: dict[tuple, dict[str, tuple[float, float]]] = {}
    settings = itertools.product(
        args.backbones.split(","), precisions, (True, False), [int(b) for b in args.batch_sizes.split(",")],
        (False, True) if args.compile else (False,),
    )  # fmt: skip
    for bb, precision, channels_last, bs, compiled in settings:
        cfg = load_config(
            config_path("demo"), data="-", backbone=bb, image_size=size, batch_size=bs,
            precision=precision, channels_last=channels_last,
        )  # fmt: skip
        t0 = time.perf_counter()
        runs = [step_rates(cfg, steps=args.steps, compile=compiled) for _ in range(args.repeats)]
        took = time.perf_counter() - t0
        rate = (max(r[0] for r in runs), max(r[1] for r in runs))
        key = (precision, channels_last, bs) + (("compiled",) if compiled else ())
        best.setdefault(key, {})[bb] = rate
        print(
            f"{bb:10s} {_setting(key):40s}: train {rate[0]:6.1f} images/s, inference {rate[1]:6.1f}"
            + (f" ({took:.0f} s in all, compiling included)" if compiled else ""),
            flush=True,
        )
    demo = load_config(config_path("demo"), data="-")
    print(f"\npredicted demo time (n={DEMO_N}, {demo.epochs} epochs; training, validation, test; all backbones above):")
    for key, rates in best.items():
        total = estimate_seconds(rates, DEMO_N, demo.epochs, demo.test_size, demo.val_size)
        print(f"  {_setting(key):40s}: {minutes(total)}")


def _setting(key: tuple) -> str:
    precision, channels_last, bs, *compiled = key
    layout = "channels_last" if channels_last else "contiguous"
    return f"{precision:10s} {layout:13s} batch {bs:3d}" + (" compiled" if compiled else "")


if __name__ == "__main__":
    main()
