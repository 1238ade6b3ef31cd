"""Drawing predictions onto a picture: a coloured box per face, labelled with expression and valence/arousal."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from affectkit.inference.predictor import FacePrediction

# one colour per expression id, in EXPRESSIONS order
_COLOURS = ["#9e9e9e", "#ffca28", "#42a5f5", "#ab47bc", "#7e57c2", "#66bb6a", "#ef5350", "#8d6e63"]


def draw_predictions(rgb: np.ndarray, preds: Sequence[FacePrediction]) -> Image.Image:
    """A copy of the image with each face boxed and labelled (expression, probability, valence, arousal)."""
    img = Image.fromarray(rgb).convert("RGB")
    draw = ImageDraw.Draw(img)
    size = max(12, int(min(img.size) / 30))
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    width = max(2, int(min(img.size) / 200))
    for p in preds:
        colour = _COLOURS[(p.expression_id or 0) % len(_COLOURS)]
        x1, y1, x2, y2 = p.box
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=width)
        lines = [f"{p.expression} {p.probabilities[p.expression]:.2f}"] if p.expression else []
        va = [f"{k} {v:+.2f}" for k, v in (("V", p.valence), ("A", p.arousal)) if v is not None]
        if va:
            lines.append(" ".join(va))
        text = "\n".join(lines) or "face"
        tb = draw.multiline_textbbox((0, 0), text, font=font)
        tw, th = tb[2] - tb[0] + 6, tb[3] - tb[1] + 6
        ty = y1 - th if y1 - th >= 0 else y2
        draw.rectangle([x1, ty, x1 + tw, ty + th], fill=colour)
        draw.multiline_text((x1 + 3, ty + 2), text, fill="black", font=font)
    return img
