"""Fixed inputs on which the shipped model's predictions are recorded (scripts/ship_model.py --expect) and checked
(test_pretrained.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# the astronaut's face in scikit-image's 512 x 512 photo (x1, y1, x2, y2): a square about MTCNN's box
ASTRONAUT_BOX = (170, 62, 280, 172)


def astronaut_face() -> np.ndarray:
    from skimage.data import astronaut

    x1, y1, x2, y2 = ASTRONAUT_BOX
    return np.ascontiguousarray(astronaut()[y1:y2, x1:x2])


def ferplus_valid_faces(root: Path, n: int = 8) -> dict[str, Path]:
    """The first ``n`` FER2013Valid files listed in its label.csv."""
    folder = root / "FER2013Valid"
    names = [line.split(",")[0] for line in (folder / "label.csv").read_text().splitlines()[:n]]
    return {f"FER2013Valid/{name}": folder / name for name in names}
