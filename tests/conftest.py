"""Shared fixtures. ``ferplus_root``: the real FER+ copy next to the repository (never copied into it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI draws the same property-test examples every run (a fixed seed), so a landing never hinges on a random
# draw; run locally without CI set to explore new examples.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

FERPLUS_ENV = "AFFECTKIT_FERPLUS"

# Under pytest-xdist each worker (and every command it starts) gets its share of the cores: two workers with two
# threads each on two cores ran compute-heavy tests 3x slower than alone.
if os.environ.get("PYTEST_XDIST_WORKER"):
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    _share = _cores // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _share)))


@pytest.fixture(scope="session")
def ferplus_root() -> Path:
    """``../shared/datasets/ferplus`` (or $AFFECTKIT_FERPLUS), resolved; skips the test if it is absent."""
    override = os.environ.get(FERPLUS_ENV)
    root = Path(override) if override else Path(__file__).parents[1].parent / "shared/datasets/ferplus"
    root = root.expanduser().resolve()
    if not (root / "FER2013Train" / "label.csv").is_file():
        source = f"${FERPLUS_ENV}" if override else "the default location"
        pytest.skip(f"FER+ not found at {root} ({source}); set {FERPLUS_ENV} to its folder")
    return root


@pytest.fixture(autouse=True, scope="session")
def _hermetic_env(tmp_path_factory):
    """Decoded-image stores and weight lookups stay inside the test session; nothing is downloaded."""
    mp = pytest.MonkeyPatch()
    mp.setenv("AFFECTKIT_CACHE", str(tmp_path_factory.mktemp("affectkit_cache")))
    mp.setenv("AFFECTKIT_OFFLINE", "1")
    yield
    mp.undo()


@pytest.fixture(scope="session")
def synth_small(tmp_path_factory) -> Path:
    """A small synthetic AffectNet-layout dataset shared by the training tests (32 px, 320 faces)."""
    from affectkit.data.synth import generate

    out = tmp_path_factory.mktemp("synth") / "faces"
    generate(out, 320, seed=1, size=32, workers=1)
    return out
