"""The README's picture of the shipped model on real photos: `python scripts/shipped_figure.py docs/shipped-model.jpg`.

Public-domain photos that ship inside installed packages: scikit-image's astronaut (Eileen Collins, NASA) and
camera man (CC0), matplotlib's Grace Hopper (US Navy). Faces found by MTCNN, read by the shipped default model,
annotated by `affectkit predict --annotate`'s drawing code, laid side by side at one height.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image


def photos() -> dict[str, np.ndarray]:
    import matplotlib
    from skimage import data

    hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return {
        "astronaut": data.astronaut(),
        "grace_hopper": np.asarray(Image.open(hopper).convert("RGB")),
        "camera": np.dstack([data.camera()] * 3),
    }


def main(out: str) -> None:
    from affectkit.inference.draw import draw_predictions
    from affectkit.inference.predictor import Predictor

    predictor = Predictor.load()
    height = 360
    panels = []
    for name, rgb in photos().items():
        faces = predictor.predict(rgb)
        for f in faces:
            top = max(f.probabilities.items(), key=lambda kv: kv[1])
            print(f"{name}: {f.expression} ({top[1]:.2f}) at {[round(v) for v in f.box]}")
        img = draw_predictions(rgb, faces)
        panels.append(img.resize((round(img.width * height / img.height), height), Image.Resampling.LANCZOS))
    sheet = Image.new("RGB", (sum(p.width for p in panels) + 8 * (len(panels) - 1), height), "white")
    x = 0
    for p in panels:
        sheet.paste(p, (x, 0))
        x += p.width + 8
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, quality=85)
    print(f"wrote {out} ({Path(out).stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/shipped-model.jpg")
