"""Rendering: a face's shapes are recorded in face units, posed in one batch and drawn with PIL at 2x
supersampling, then blurred, lit and noised as numpy arrays."""

from __future__ import annotations

import math
from typing import cast

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from affectkit.data.synth.params import FaceParams, _geometry
from affectkit.data.synth.shapes import EYE_Y, MOUTH_Y, NOSE_Y, canonical_points

__all__ = ["render_face"]

_NOISE_BANK: np.ndarray | None = None


def _noise_slice(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Unit Gaussian noise of ``shape``: a window of a fixed bank at an offset drawn from ``rng``.

    Drawing fresh normals costs more than the rest of the post-processing together; a window of a fixed
    2**21-sample bank (seeded, so identical in every process) is just as good as sensor-noise nuisance.
    """
    global _NOISE_BANK
    if _NOISE_BANK is None:
        _NOISE_BANK = np.random.default_rng(20240601).standard_normal(1 << 21, dtype=np.float32)
    k = int(np.prod(shape))
    reps = -(-k // len(_NOISE_BANK))
    bank = _NOISE_BANK if reps == 1 else np.tile(_NOISE_BANK, reps + 1)
    start = int(rng.integers(0, len(bank) - k + 1))
    return bank[start : start + k].reshape(shape)


_COS48 = np.cos(np.linspace(0, 2 * np.pi, 48, endpoint=False))
_SIN48 = np.sin(np.linspace(0, 2 * np.pi, 48, endpoint=False))


def _supersample(size: int) -> int:
    # Anti-aliasing matters most at small sizes, where a 1-px stair step hides a marker; at large sizes it is
    # cheap enough to skip.
    return 2 if size <= 160 else 1


def _background(p: FaceParams, S: int, rng: np.random.Generator) -> Image.Image:
    c0, c1 = (np.array(c, dtype=np.float32) for c in p.bg_colours)
    if p.bg_kind == 1:
        # A linear ramp sampled on a 4x4 grid and upscaled: much cheaper than a full-size float ramp.
        a = rng.uniform(0, 2 * math.pi)
        g = np.linspace(0.0, 1.0, 4, dtype=np.float32)
        w = np.cos(a) * g[None, :] + np.sin(a) * g[:, None]
        w = (w - w.min()) / max(float(w.max() - w.min()), 1e-6)
        small = (c0 + w[..., None] * (c1 - c0)).astype(np.uint8)
        img = Image.fromarray(small).resize((S, S), Image.Resampling.BILINEAR)
    elif p.bg_kind == 3:
        small = rng.integers(0, 256, (6, 6, 3)).astype(np.uint8)
        small = (small.astype(np.float32) * 0.5 + c0 * 0.5).astype(np.uint8)
        img = Image.fromarray(small).resize((S, S), Image.Resampling.BILINEAR)
    else:
        img = Image.new("RGB", (S, S), tuple(int(v) for v in c0))
    if p.bg_kind >= 2:
        d = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(3, 9))):
            x0, y0 = rng.uniform(-0.2, 1.0, 2) * S
            w, h = rng.uniform(0.1, 0.5, 2) * S
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            (d.ellipse if rng.random() < 0.5 else d.rectangle)([x0, y0, x0 + w, y0 + h], fill=colour)
    return img


def _pose(p: FaceParams, S: int):
    """Maps face units to canvas pixels; ``features=True`` also turns the point on a sphere for yaw."""
    H = 1.3 * p.face_length
    s = p.frac * S / (2 * H)
    c, sn = math.cos(math.radians(p.roll)), math.sin(math.radians(p.roll))
    R2 = (1.15 * p.face_width) ** 2  # squared radius of the sphere the features sit on
    cyaw, syaw = math.cos(math.radians(p.yaw)), math.sin(math.radians(p.yaw))
    a, b, cx, cy = c * s, sn * s, p.center[0] * S, p.center[1] * S

    def f(pts: np.ndarray, features: bool = True) -> np.ndarray:
        x, y = pts[:, 0], pts[:, 1]
        if features:  # R sin(asin(x / R) + yaw), expanded
            x = x * cyaw + np.sqrt(np.maximum(R2 - x * x, 0.0)) * syaw
        out = np.empty((len(pts), 2))
        out[:, 0] = a * x - b * y + cx
        out[:, 1] = b * x + a * y + cy
        return out

    return f, s


def _poly(a: np.ndarray) -> list[float]:
    return a.ravel().tolist()  # PIL takes flat [x0, y0, x1, y1, ...]


def _ellipse(cx, cy, rx, ry) -> np.ndarray:
    return np.stack([cx + rx * _COS48, cy + ry * _SIN48], 1)


class _Shapes:
    """Shapes recorded in face units and posed in one batch at the end (per-shape numpy calls dominated)."""

    def __init__(self, p: FaceParams, scale: float) -> None:
        self.ops: list[tuple[np.ndarray, bool, tuple, int]] = []  # (points, on the feature sphere, colour, width|0)
        self.scale = scale
        self.skin = p.skin
        self.dark = tuple(int(v * 0.3) for v in p.skin)
        self.shade = tuple(int(v * 0.72) for v in p.skin)

    def poly(self, pts: np.ndarray, fill: tuple, features: bool = True) -> None:
        self.ops.append((pts, features, fill, 0))

    def line(self, pts: np.ndarray, fill: tuple, width: float, features: bool = True) -> None:
        self.ops.append((pts, features, fill, max(1, int(round(width * self.scale)))))


def _hair_and_head(sh: _Shapes, p: FaceParams, pts: dict) -> None:
    """Hair behind the head, then ears, then the face and the hair cap."""
    W, H = p.face_width, 1.3 * p.face_length
    if p.hair_style == 2:
        sh.poly(
            np.array([[-W * 1.15, -0.4 * H], [W * 1.15, -0.4 * H], [W * 1.2, 1.15 * H], [-W * 1.2, 1.15 * H]]),
            p.hair,
            False,
        )
    if p.hair_style:
        sh.poly(_ellipse(0, -0.18 * H, W * 1.1, H * 0.95), p.hair, False)
    for sx in (-1, 1):
        sh.poly(_ellipse(sx * W * 0.97, EYE_Y + 0.12, 0.14, 0.24), sh.shade, False)
    sh.poly(pts["face"], sh.skin, False)
    if p.hair_style in (1, 3):
        # Top of the head down to a hairline kept above the highest brow position; style 3 has a fringe.
        a = np.linspace(np.pi + 0.55, 2 * np.pi - 0.55, 21)
        top = np.stack([1.04 * W * np.cos(a), 1.04 * H * np.sin(a)], 1)
        t = np.linspace(1, -1, 21)
        y_mid = (-0.7 if p.hair_style == 3 else -0.82) * H
        hairline = np.stack([t * top[-1, 0], top[-1, 1] + (y_mid - top[-1, 1]) * (1 - t**2) + 0.02 * np.cos(9 * t)], 1)
        sh.poly(np.concatenate([top, hairline]), p.hair, False)


def _folds_and_furrow(sh: _Shapes, g: dict) -> None:
    # Happy: cheek folds from the nose wings to outside the mouth corners.
    if g["folds"]:
        mw = g["mouth_w"]
        for sx in (-1, 1):
            fold = np.array(
                [
                    [sx * 0.2, NOSE_Y - 0.04],
                    [sx * (mw * 0.8 + 0.12), NOSE_Y + 0.14],
                    [sx * (mw + 0.1), MOUTH_Y - g["curve"] * 0.6],
                    [sx * (mw + 0.07), MOUTH_Y + 0.1],
                ]
            )
            sh.line(fold, sh.shade, 0.05)
    # Anger: vertical furrow lines between the brows.
    if g["furrow"]:
        by = EYE_Y - 0.22 - g["brow_raise"] + 0.1
        for sx in (-1, 1):
            sh.line(np.array([[sx * 0.06, by - 0.14], [sx * 0.045, by + 0.02]]), sh.dark, 0.04)


def _eyes_and_brows(sh: _Shapes, p: FaceParams, pts: dict) -> None:
    for name in ("eye_l", "eye_r"):
        sh.poly(pts[name], (245, 245, 240))
        (icx, icy), (r, _) = pts[name + "_iris"]
        sh.poly(_ellipse(icx, icy, r, r), p.iris)
        sh.poly(_ellipse(icx, icy, r * 0.45, r * 0.45), (10, 10, 10))
        # Re-draw the skin above the upper lid so the iris never pokes out of the eye.
        up = pts[name + "_upper"]
        sh.poly(np.concatenate([up, up[::-1] + np.array([0.0, -0.12])]), sh.skin)
        lo = pts[name][len(up) - 1 :]  # lower lid (right corner back to left), closing the outline
        lo_line = np.vstack([up[-1:], lo, up[:1]])
        sh.poly(np.concatenate([lo_line, lo_line[::-1] + np.array([0.0, 0.1])]), sh.skin)
        sh.line(up, sh.dark, 0.04)
    brow_col = tuple(int(min(a, b * 0.8)) for a, b in zip(sh.dark, p.hair, strict=True)) if p.hair_style else sh.dark
    for name in ("brow_l", "brow_r"):
        sh.line(pts[name], brow_col, 0.1)


def _nose(sh: _Shapes, p: FaceParams, g: dict, L: np.ndarray) -> None:
    """One side line and the nostrils; disgust adds wrinkle lines across the bridge."""
    nose_side = np.array([[0.05, EYE_Y + 0.05], [0.09, NOSE_Y - 0.08], [0.14, NOSE_Y - 0.01]])
    sh.line(nose_side * np.array([p.side, 1]), sh.shade, 0.035)
    for k in (32, 34):
        nx, ny = L[k]
        sh.poly(_ellipse(nx, ny - 0.01, 0.04, 0.022), sh.dark)
    sh.line(L[31:36], sh.shade, 0.03)
    if g["wrinkle"]:
        for k in range(3):
            y = EYE_Y + 0.1 + 0.07 * k
            for sx in (-1, 1):
                sh.line(np.array([[sx * 0.02, y], [sx * 0.14, y - 0.05]]), sh.dark, 0.035)


def _mouth(sh: _Shapes, p: FaceParams, g: dict, pts: dict) -> None:
    """Lips, opening, teeth, the line between the lips; contempt adds a crease beside the raised corner."""
    sh.poly(pts["mouth_outer"], p.lip)
    if g["mouth_open"] + g["lip_raise"] > 0.015:
        sh.poly(pts["mouth_inner"], (60, 15, 20))
        if p.expression == 1 and p.teeth and g["mouth_open"] > 0.05:
            sh.poly(pts["teeth"], (240, 240, 235))
    sh.line(pts["mouth_line"], tuple(int(v * 0.45) for v in p.lip), 0.035)
    if g["dimple"]:
        cx, cy = pts["mouth_line"][-1 if p.side > 0 else 0]
        sx = 1.0 if p.side > 0 else -1.0
        crease = np.array([[cx + sx * 0.03, cy - 0.13], [cx + sx * 0.08, cy - 0.02], [cx + sx * 0.05, cy + 0.08]])
        sh.line(crease, tuple(int(v * 0.55) for v in sh.skin), 0.045)


def _occluder(sh: _Shapes, p: FaceParams, rng: np.random.Generator) -> None:
    """A rectangle or hand-like blob covering well under 15% of the face."""
    if not p.occlusion:
        return
    W, H = p.face_width, 1.3 * p.face_length
    ox, oy = rng.uniform(-0.75, 0.75) * W, rng.uniform(-0.6, 0.9) * H
    colour = tuple(
        int(v)
        for v in (
            rng.integers(0, 256, 3) if p.occlusion == 1 else np.clip(np.array(sh.skin) * rng.uniform(0.8, 1.1), 0, 255)
        )
    )
    if p.occlusion == 1:
        w, h = rng.uniform(0.35, 0.7), rng.uniform(0.3, 0.6)
        sh.poly(
            np.array(
                [[ox - w / 2, oy - h / 2], [ox + w / 2, oy - h / 2], [ox + w / 2, oy + h / 2], [ox - w / 2, oy + h / 2]]
            ),
            colour,
            False,
        )
        return
    sh.poly(_ellipse(ox, oy, 0.26, 0.2), colour, False)
    ang = rng.uniform(-0.5, 0.5) - math.pi / 2
    for k in range(4):
        a = ang + (k - 1.5) * 0.3
        tip = np.array(
            [[ox + 0.1 * math.cos(a), oy + 0.1 * math.sin(a)], [ox + 0.42 * math.cos(a), oy + 0.42 * math.sin(a)]]
        )
        sh.line(tip, colour, 0.09, False)


def _draw(sh: _Shapes, T, L: np.ndarray, img: Image.Image) -> np.ndarray:
    """Pose every recorded shape (and the landmarks) with two transform calls, draw them in order; returns the
    posed landmarks."""
    ops = [*sh.ops, (L, True, (), -1)]
    posed: list[np.ndarray | None] = [None] * len(ops)
    for features in (True, False):
        sel = [i for i, o in enumerate(ops) if o[1] == features]
        if not sel:
            continue
        allp = T(np.concatenate([ops[i][0] for i in sel]), features)
        ends = np.cumsum([len(ops[i][0]) for i in sel])[:-1]
        for i, part in zip(sel, np.split(allp, ends), strict=True):
            posed[i] = part
    done = cast("list[np.ndarray]", posed)  # the loop above fills every slot
    d = ImageDraw.Draw(img)
    for (_, _, fill, width), q in zip(ops[:-1], done[:-1], strict=True):
        if width:
            d.line(_poly(q), fill=fill, width=width, joint="curve")
        else:
            d.polygon(_poly(q), fill=fill)
    return done[-1]


def _finish(img: Image.Image, p: FaceParams, size: int, ss: int, rng: np.random.Generator) -> np.ndarray:
    """Downsample, blur, light and noise the drawn canvas -> uint8 (size, size, 3)."""
    if ss > 1:
        img = img.reduce(ss)
    if p.blur > 0:
        # One box pass is ~3x cheaper than PIL's Gaussian; radius chosen for a similar spread.
        img = img.filter(ImageFilter.BoxBlur(1.7 * p.blur * size / 64))
    arr = np.asarray(img, dtype=np.float32)
    # Lighting: a linear brightness ramp across the image; then sensor noise.
    ramp = np.linspace(-0.5, 0.5, size, dtype=np.float32)
    light = 1.0 + p.light_strength * (math.cos(p.light_angle) * ramp[None, :] + math.sin(p.light_angle) * ramp[:, None])
    arr *= light[..., None]
    if p.noise > 0:
        arr += _noise_slice(rng, arr.shape) * np.float32(p.noise)
    arr += 0.5
    np.clip(arr, 0, 255, out=arr)
    return arr.astype(np.uint8)


def render_face(params: FaceParams, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw one face. Returns ``(image HxWx3 uint8 RGB, landmarks (68, 2) float32 in pixels)``."""
    if size < 16:
        raise ValueError(f"size must be >= 16 pixels, got {size}")
    p = params
    ss = _supersample(size)
    S = size * ss
    # One RNG for the fine detail, drawn from in a fixed order: background, occluder, noise.
    rng = np.random.default_rng(p.detail_seed)
    g = _geometry(p)
    pts = canonical_points(p, g)
    T, s = _pose(p, S)
    img = _background(p, S, rng)
    sh = _Shapes(p, s)
    _hair_and_head(sh, p, pts)
    _folds_and_furrow(sh, g)
    _eyes_and_brows(sh, p, pts)
    _nose(sh, p, g, pts["landmarks"])
    _mouth(sh, p, g, pts)
    _occluder(sh, p, rng)
    lmk_canvas = _draw(sh, T, pts["landmarks"], img)
    return _finish(img, p, size, ss, rng), (lmk_canvas / ss).astype(np.float32)
