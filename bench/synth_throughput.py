"""Throughput of the synthetic face generator: images written per second (render + JPEG + annotations)."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

from affectkit.data.synth import generate
from affectkit.machine import describe


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=None, help="default: the usable CPUs")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(describe(), flush=True)
    workers = args.workers or len(os.sched_getaffinity(0))
    tmp = tempfile.mkdtemp(prefix="synth_bench_")
    try:
        c0, t0 = os.times(), time.perf_counter()
        generate(tmp, args.n, seed=args.seed, size=args.size, workers=workers)
        dt = time.perf_counter() - t0
        c1 = os.times()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    # CPU seconds of this process and its workers: on a shared machine wall time also counts other jobs.
    cpu = sum(c1[k] - c0[k] for k in range(4))
    print(
        f"{args.n / dt:.1f} images/s  (n={args.n}, size={args.size}, workers={workers}, {dt:.2f} s wall; "
        f"{1e3 * cpu / args.n:.2f} CPU-ms/image, i.e. {workers * args.n / cpu:.0f} images/s "
        f"if {workers} cores were free)"
    )


if __name__ == "__main__":
    main()
