"""Shared fixtures. ``ferplus_root``: the real FER+ copy next to the repository (never copied into it)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

FERPLUS_ENV = "AFFECTKIT_FERPLUS"


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
