"""Bootstrap CIs of the classification metrics: vectorised kernels vs scikit-learn/krippendorff per resample.

    python bench/metrics_bootstrap.py [--n 2000] [--n-boot 200]

The library path evaluates ``classification_scalars`` (sklearn + krippendorff) on each resampled row set; the
vectorised path evaluates whole blocks of resamples as weighted statistics (what classification_metrics(ci=True)
runs). Both see the same resamples.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from affectkit.machine import describe
from affectkit.metrics._vectorised import classification_batch
from affectkit.metrics.bootstrap import _counts, _index_blocks
from affectkit.metrics.classification import classification_scalars


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="rows")
    ap.add_argument("--n-boot", type=int, default=200, help="resamples")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    t = rng.integers(0, 8, args.n)
    scores = rng.random((args.n, 8))
    p = scores.argmax(axis=1)
    blocks = list(_index_blocks(args.n, args.n_boot, seed=0))

    start = time.perf_counter()
    for idx in blocks:
        classification_batch(t, p, scores, _counts(idx, args.n), 8)
    vec = time.perf_counter() - start

    start = time.perf_counter()
    for idx in blocks:
        for rows in idx:
            classification_scalars(t[rows], p[rows], scores[rows])
    lib = time.perf_counter() - start

    print(describe())
    print(f"n={args.n} rows, {args.n_boot} resamples, 8 classes, all 7 scalar metrics")
    print(f"vectorised kernels: {vec:.3f} s ({vec / args.n_boot * 1e3:.2f} ms/resample)")
    print(f"sklearn+krippendorff per resample: {lib:.3f} s ({lib / args.n_boot * 1e3:.2f} ms/resample)")
    print(f"speed-up: {lib / vec:.1f}x")


if __name__ == "__main__":
    main()
