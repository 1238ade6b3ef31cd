"""Procedurally drawn faces with expression, valence/arousal and landmark labels: the built-in demo dataset.

Conventions
-----------
* Expression ids are AffectNet's (0 Neutral .. 7 Contempt, see :mod:`affectkit.labels`), drawn uniformly.
* Valence/arousal are sampled around a per-class prototype on the circumplex (spread ``VA_SPREAD``) and clipped
  to [-1, 1].
* The drawing encodes both: continuous cues (mouth-corner curvature follows valence; mouth opening, eye opening
  and brow height follow arousal) plus class markers that separate classes with similar valence/arousal
  (anger: V-shaped brows, narrowed eyes, furrow lines; fear: raised inner brows drawn together, wide eyes,
  stretched mouth; surprise: high round brows, "O" mouth; disgust: nose wrinkles, raised one-sided upper lip;
  contempt: one-sided mouth-corner raise; sad: inner brows raised, down-turned mouth; happy: upturned mouth,
  cheek folds, narrowed eyes, optional teeth; neutral: flat).
* Landmarks follow the iBUG 68-point order, in pixels of the returned image, (x, y) with the origin at the
  top-left pixel corner. Point 0 (the subject's right jaw) is on the image's left.
* Every face is a pure function of ``(seed, index)``: its RNG is ``np.random.default_rng([seed, index])``, so
  output bytes do not depend on the number of worker processes.

On disk (:func:`generate`) the layout is AffectNet's: ``images/<id>.jpg`` and
``annotations/<id>_{exp,val,aro,lnd}.npy`` with ``<id>`` the zero-padded index, plus ``synth.json``.
"""
from __future__ import annotations

import json
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from affectkit.labels import EXPRESSIONS, NUM_EXPRESSIONS

GENERATOR_VERSION = 1
JPEG_QUALITY = 95
VA_SPREAD = 0.2

# (valence, arousal) prototype of each class, AffectNet order.
VA_PROTOTYPES = np.array([
    (0.0, 0.0),      # Neutral
    (0.7, 0.35),     # Happy
    (-0.65, -0.35),  # Sad
    (0.2, 0.75),     # Surprise
    (-0.55, 0.7),    # Fear
    (-0.65, 0.3),    # Disgust
    (-0.55, 0.6),    # Anger
    (-0.45, 0.1),    # Contempt
])

_SKIN_TONES = np.array([
    (255, 224, 196), (241, 194, 160), (224, 172, 130), (198, 144, 104),
    (168, 117, 80), (141, 94, 62), (110, 72, 48), (232, 190, 172),
], dtype=float)
_HAIR_COLOURS = np.array([
    (20, 16, 14), (60, 40, 25), (110, 72, 40), (170, 130, 80), (220, 190, 130), (130, 45, 25), (150, 150, 150),
], dtype=float)
_IRIS_COLOURS = np.array([(60, 40, 25), (90, 60, 30), (60, 100, 140), (70, 110, 70), (30, 25, 20)], dtype=float)


@dataclass
class FaceParams:
    """Everything that defines one face. Geometry is in "face units" (face half-width ~ 1, y down)."""

    expression: int
    valence: float
    arousal: float
    intensity: float        # scales the class markers, in [0.85, 1.15]
    side: int               # +1/-1: which side a one-sided marker (contempt, disgust) is on
    teeth: bool             # happy: show teeth when the mouth is open
    face_width: float       # half-width of the head, face units
    face_length: float      # half-height / 1.3
    chin_taper: float
    skin: tuple[int, int, int]
    lip: tuple[int, int, int]
    hair: tuple[int, int, int]
    hair_style: int         # 0 none, 1 short cap, 2 long, 3 cap with fringe
    iris: tuple[int, int, int]
    gaze: tuple[float, float]
    frac: float             # face height / image size, in [0.6, 0.9]
    center: tuple[float, float]  # face centre, fractions of the image size
    roll: float             # in-plane rotation, degrees
    yaw: float              # degrees; drawn by shifting/squeezing the features on a sphere
    bg_kind: int            # 0 solid, 1 gradient, 2 shapes, 3 texture + shapes
    bg_colours: tuple[tuple[int, int, int], tuple[int, int, int]]
    light_angle: float
    light_strength: float
    blur: float             # Gaussian blur radius at 64 px (scaled with size); 0 = none
    noise: float            # Gaussian noise sigma, uint8 units
    occlusion: int          # 0 none, 1 rectangle, 2 hand-like blob
    detail_seed: int        # seeds the fine detail (background shapes, texture, noise, occluder placement)


def sample_params(rng: np.random.Generator, difficulty: float = 1.0) -> FaceParams:
    """Draw one face's labels and nuisance parameters from ``rng``.

    ``difficulty`` in [0, 1] scales the nuisance (how far the face may shrink in the frame, head pose, blur,
    noise, lighting and occlusion odds); the expression cues are the same at every level. The same random draws
    are made at any level, so 1.0 (the default) is the full-nuisance dataset.
    """
    d = float(np.clip(difficulty, 0.0, 1.0))
    expr = int(rng.integers(NUM_EXPRESSIONS))
    va = np.clip(VA_PROTOTYPES[expr] + rng.normal(0.0, VA_SPREAD, 2), -1.0, 1.0)
    skin = _SKIN_TONES[rng.integers(len(_SKIN_TONES))] * rng.uniform(0.92, 1.06) + rng.normal(0, 5, 3)
    skin = np.clip(skin, 30, 255)
    lip = np.clip(skin * np.array([0.85, 0.55, 0.55]) + np.array([25, 0, 0]), 0, 255)
    hair = np.clip(_HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] + rng.normal(0, 8, 3), 0, 255)
    iris = np.clip(_IRIS_COLOURS[rng.integers(len(_IRIS_COLOURS))] + rng.normal(0, 8, 3), 0, 255)
    frac = 0.9 - (0.9 - float(rng.uniform(0.6, 0.9))) * d
    slack = (1.0 - frac) / 2 * 0.8
    bg = rng.integers(0, 256, (2, 3))
    u = rng.random()
    occlusion = 0 if u >= 0.15 * d else (1 if u < 0.06 * d else 2)

    def col(a) -> tuple[int, int, int]:
        return tuple(int(round(v)) for v in a)

    return FaceParams(
        expression=expr, valence=float(va[0]), arousal=float(va[1]),
        intensity=float(rng.uniform(0.85, 1.15)), side=int(rng.choice([-1, 1])), teeth=bool(rng.random() < 0.6),
        face_width=float(rng.uniform(0.88, 1.08)), face_length=float(rng.uniform(0.92, 1.08)),
        chin_taper=float(rng.uniform(0.1, 0.35)),
        skin=col(skin), lip=col(lip), hair=col(hair), hair_style=int(rng.integers(4)), iris=col(iris),
        gaze=(float(rng.uniform(-0.3, 0.3)), float(rng.uniform(-0.2, 0.2))),
        frac=frac, center=(float(0.5 + rng.uniform(-slack, slack)), float(0.5 + rng.uniform(-slack, slack))),
        roll=float(rng.uniform(-15, 15)) * d, yaw=float(rng.uniform(-15, 15)) * d,
        bg_kind=int(rng.integers(4)), bg_colours=(col(bg[0]), col(bg[1])),
        light_angle=float(rng.uniform(0, 2 * math.pi)), light_strength=float(rng.uniform(0.0, 0.3)) * d,
        blur=float(rng.uniform(0.3, 0.8)) if rng.random() < 0.3 * d else 0.0,
        noise=float(rng.uniform(0.0, 7.0)) * d,
        occlusion=occlusion, detail_seed=int(rng.integers(2**31)),
    )


# Class markers at intensity 1, in face units unless noted. Keys: brow raise / inner-end tilt (up > 0) / inner
# ends drawn in (< 0) / arch, eye-opening change (fraction), mouth width change (fraction), extra mouth opening,
# extra corner lift, one-sided corner raise, one-sided upper-lip raise, and flags for nose wrinkles, contempt
# crease, cheek folds and brow furrow lines.
_MARKERS: dict[int, dict[str, float]] = {
    0: {},
    1: dict(eye=-0.3, width=0.15, open=0.04, curve=0.1, folds=1),
    2: dict(tilt=0.17, inner=-0.03, arch=-0.02, eye=-0.15, width=-0.05, curve=-0.06),
    3: dict(raise_=0.16, arch=0.1, eye=0.5, width=-0.45, open=0.24),
    4: dict(raise_=0.07, tilt=0.15, inner=-0.08, arch=-0.02, eye=0.55, width=0.35, open=0.06),
    5: dict(raise_=-0.04, tilt=-0.04, eye=-0.25, width=-0.05, lip_raise=0.11, wrinkle=1),
    6: dict(raise_=-0.05, tilt=-0.19, inner=-0.07, arch=-0.02, eye=-0.6, width=-0.15, open=-0.12, furrow=1),
    7: dict(eye=-0.1, asym=0.34, dimple=1),
}


def _geometry(p: FaceParams) -> dict[str, float]:
    """Expression geometry: continuous valence/arousal terms plus the class markers."""
    m = {k: v * p.intensity for k, v in _MARKERS[p.expression].items()}
    a, v = p.arousal, p.valence
    return dict(
        brow_raise=0.09 * a + m.get("raise_", 0.0),
        brow_tilt=m.get("tilt", 0.0),
        brow_inner=m.get("inner", 0.0),
        brow_arch=0.035 + m.get("arch", 0.0),
        eye_open=float(np.clip(1.0 + 0.45 * a + m.get("eye", 0.0), 0.3, 2.2)),
        mouth_w=0.3 * (1.0 + m.get("width", 0.0)),
        mouth_open=max(0.0, 0.16 * a + m.get("open", 0.0)),
        curve=0.26 * v + m.get("curve", 0.0),
        asym=m.get("asym", 0.0),
        lip_raise=m.get("lip_raise", 0.0),
        wrinkle=m.get("wrinkle", 0.0), dimple=m.get("dimple", 0.0), folds=m.get("folds", 0.0),
        furrow=m.get("furrow", 0.0),
    )


_EYE_Y, _EYE_X, _EYE_W, _EYE_H = -0.2, 0.38, 0.17, 0.085
_MOUTH_Y = 0.62
_NOSE_Y = 0.3


def _mouth_curves(g: dict, side: int, n: int = 25):
    """Outer/inner lip curves as functions of t in [-1, 1] (left corner to right corner)."""
    t = np.linspace(-1.0, 1.0, n)
    mw, op = g["mouth_w"], g["mouth_open"]
    # Corner lift per side; contempt raises one corner only.
    lift_l = g["curve"] + (g["asym"] if side < 0 else 0.0)
    lift_r = g["curve"] + (g["asym"] if side > 0 else 0.0)
    lift = np.where(t < 0, lift_l, lift_r) * t**2
    mid = _MOUTH_Y - lift
    env = np.sqrt(np.clip(1 - t**2, 0, 1))
    # Disgust: upper lip pulled up, more on one side.
    raise_up = g["lip_raise"] * (0.55 + 0.45 * side * t) * env
    inner_up = mid - op / 2 * env - raise_up
    inner_lo = mid + op / 2 * env
    outer_up = inner_up - 0.075 * env**0.6 + 0.02 * env * (np.abs(t) < 0.25)  # slight cupid's bow
    outer_lo = inner_lo + 0.095 * env**0.6
    # The raised corner is also pulled outwards (a smirk).
    x = t * mw + 0.25 * g["asym"] * np.clip(side * t, 0, None) * side
    return x, outer_up, outer_lo, inner_up, inner_lo


def _canonical_points(p: FaceParams, g: dict) -> dict[str, np.ndarray]:
    """All drawing primitives and the 68 landmarks in face units, before pose."""
    W, H = p.face_width, 1.3 * p.face_length
    out: dict[str, np.ndarray] = {}
    # Head outline: ellipse with a tapered chin.
    th = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    taper = 1 - p.chin_taper * np.clip(np.sin(th), 0, None) ** 2
    out["face"] = np.stack([W * np.cos(th) * taper, H * np.sin(th)], 1)
    # Jaw: 17 points from just above eye level on the image-left side, round the chin, to the right side.
    jth = np.linspace(np.pi + 0.15, -0.15, 17)
    jtaper = 1 - p.chin_taper * np.clip(np.sin(jth), 0, None) ** 2
    jaw = np.stack([W * np.cos(jth) * jtaper, H * np.sin(jth)], 1)
    out["jaw"] = jaw

    # Brows: centre line from outer (t=0) to inner (t=1), both sides.
    tb = np.linspace(0, 1, 9)
    base = _EYE_Y - 0.22 - g["brow_raise"]
    inner_x = 0.13 + g["brow_inner"]
    bx = 0.62 + (inner_x - 0.62) * tb
    by = base - g["brow_arch"] * np.sin(np.pi * tb) * 1.4 - g["brow_tilt"] * tb**2
    out["brow_l"] = np.stack([-bx, by], 1)  # image-left, outer -> inner
    out["brow_r"] = np.stack([bx, by], 1)
    # Eyes: lids as functions of t in [-1, 1].
    te = np.linspace(-1, 1, 15)
    eh = _EYE_H * g["eye_open"]
    lower_scale = 0.75 if p.expression != 1 else 0.45  # happy: cheek raise pushes the lower lid up
    for name, cx in (("eye_l", -_EYE_X), ("eye_r", _EYE_X)):
        up = _EYE_Y - eh * (1 - te**2) ** 0.7
        lo = _EYE_Y + eh * lower_scale * (1 - te**2) ** 0.9
        ex = cx + te * _EYE_W
        out[name] = np.concatenate([np.stack([ex, up], 1), np.stack([ex[::-1], lo[::-1]], 1)[1:-1]])
        out[name + "_upper"] = np.stack([ex, up], 1)
        r = min(0.075, eh * 0.95)
        out[name + "_iris"] = np.array([[cx + p.gaze[0] * 0.06, _EYE_Y + p.gaze[1] * 0.03 - 0.1 * eh], [r, r]])
    # Mouth.
    mx, ou, ol, iu, il = _mouth_curves(g, p.side)
    out["mouth_outer"] = np.concatenate([np.stack([mx, ou], 1), np.stack([mx[::-1], ol[::-1]], 1)[1:-1]])
    out["mouth_inner"] = np.concatenate([np.stack([mx, iu], 1), np.stack([mx[::-1], il[::-1]], 1)[1:-1]])
    out["mouth_line"] = np.stack([mx, (iu + il) / 2], 1)
    out["teeth"] = np.concatenate([np.stack([mx, iu], 1),
                                   np.stack([mx[::-1], np.minimum(il, iu + 0.06)[::-1]], 1)[1:-1]])

    # 68 landmarks.
    L = np.zeros((68, 2))
    L[0:17] = jaw
    idx = [0, 2, 4, 6, 8]
    L[17:22] = out["brow_l"][idx]
    L[22:27] = out["brow_r"][idx][::-1]
    L[27:31] = np.stack([np.zeros(4), np.linspace(_EYE_Y, _NOSE_Y - 0.08, 4)], 1)
    nos = np.array([[-0.13, _NOSE_Y - 0.02], [-0.065, _NOSE_Y + 0.02], [0, _NOSE_Y + 0.035],
                    [0.065, _NOSE_Y + 0.02], [0.13, _NOSE_Y - 0.02]])
    if g["wrinkle"]:
        nos[:, 1] -= 0.03  # nose wrinkler lifts the nostrils
    L[31:36] = nos

    # Eyes: 36/45 are the outer corners, 39/42 the inner ones; each eye runs clockwise in the image.
    ts = np.array([-1, -1 / 3, 1 / 3, 1, 1 / 3, -1 / 3])
    upper = np.array([True, True, True, True, False, False])
    ey = np.where(upper, _EYE_Y - eh * (1 - ts**2) ** 0.7, _EYE_Y + eh * lower_scale * (1 - ts**2) ** 0.9)
    for k, cx in enumerate((-_EYE_X, _EYE_X)):
        L[36 + 6 * k:42 + 6 * k] = np.stack([cx + ts * _EYE_W, ey], 1)
    # Mouth: sample the lip curves at fixed positions t along the mouth.
    tg = np.linspace(-1, 1, len(mx))
    mid = (iu + il) / 2
    for sl, curve, tq in ((slice(48, 55), ou, (-1, -0.6, -0.3, 0, 0.3, 0.6, 1)),
                          (slice(55, 60), ol, (0.6, 0.3, 0, -0.3, -0.6)),
                          (slice(60, 61), mid, (-0.92,)), (slice(61, 64), iu, (-0.4, 0, 0.4)),
                          (slice(64, 65), mid, (0.92,)), (slice(65, 68), il, (0.4, 0, -0.4))):
        L[sl] = np.stack([np.interp(tq, tg, mx), np.interp(tq, tg, curve)], 1)
    out["landmarks"] = L
    return out


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
    return bank[start:start + k].reshape(shape)


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
        img = Image.fromarray(small).resize((S, S), Image.BILINEAR)
    elif p.bg_kind == 3:
        small = rng.integers(0, 256, (6, 6, 3)).astype(np.uint8)
        small = ((small.astype(np.float32) * 0.5 + c0 * 0.5)).astype(np.uint8)
        img = Image.fromarray(small).resize((S, S), Image.BILINEAR)
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


def render_face(params: FaceParams, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw one face. Returns ``(image HxWx3 uint8 RGB, landmarks (68, 2) float32 in pixels)``."""
    if size < 16:
        raise ValueError(f"size must be >= 16 pixels, got {size}")
    p = params
    ss = _supersample(size)
    S = size * ss
    rng = np.random.default_rng(p.detail_seed)
    g = _geometry(p)
    pts = _canonical_points(p, g)
    T, s = _pose(p, S)

    def px(w: float) -> int:
        return max(1, int(round(w * s)))

    img = _background(p, S, rng)
    d = ImageDraw.Draw(img)
    skin = p.skin
    dark = tuple(int(v * 0.3) for v in skin)
    shade = tuple(int(v * 0.72) for v in skin)
    W, H = p.face_width, 1.3 * p.face_length

    # Shapes are recorded in face units and posed in one batch at the end (per-shape numpy calls dominated).
    ops: list[tuple[np.ndarray, bool, tuple, int]] = []  # (points, on the feature sphere, colour, line width|0)

    def poly(pts: np.ndarray, fill: tuple, features: bool = True) -> None:
        ops.append((pts, features, fill, 0))

    def line(pts: np.ndarray, fill: tuple, width: float, features: bool = True) -> None:
        ops.append((pts, features, fill, px(width)))

    def ellipse(cx, cy, rx, ry):
        return np.stack([cx + rx * _COS48, cy + ry * _SIN48], 1)

    # Hair behind the head, then ears, then the face.
    if p.hair_style == 2:
        poly(np.array([[-W * 1.15, -0.4 * H], [W * 1.15, -0.4 * H], [W * 1.2, 1.15 * H], [-W * 1.2, 1.15 * H]]),
             p.hair, False)
    if p.hair_style:
        poly(ellipse(0, -0.18 * H, W * 1.1, H * 0.95), p.hair, False)
    for sx in (-1, 1):
        poly(ellipse(sx * W * 0.97, _EYE_Y + 0.12, 0.14, 0.24), shade, False)
    poly(pts["face"], skin, False)
    if p.hair_style in (1, 3):
        # Top of the head down to a hairline kept above the highest brow position; style 3 has a fringe.
        a = np.linspace(np.pi + 0.55, 2 * np.pi - 0.55, 21)
        top = np.stack([1.04 * W * np.cos(a), 1.04 * H * np.sin(a)], 1)
        t = np.linspace(1, -1, 21)
        y_mid = (-0.7 if p.hair_style == 3 else -0.82) * H
        hairline = np.stack([t * top[-1, 0], top[-1, 1] + (y_mid - top[-1, 1]) * (1 - t**2) + 0.02 * np.cos(9 * t)], 1)
        cap = np.concatenate([top, hairline])
        poly(cap, p.hair, False)

    # Happy: cheek folds from the nose wings to outside the mouth corners.
    if g["folds"]:
        mw = g["mouth_w"]
        for sx in (-1, 1):
            fold = np.array([[sx * 0.2, _NOSE_Y - 0.04], [sx * (mw * 0.8 + 0.12), _NOSE_Y + 0.14],
                             [sx * (mw + 0.1), _MOUTH_Y - g["curve"] * 0.6], [sx * (mw + 0.07), _MOUTH_Y + 0.1]])
            line(fold, shade, 0.05)
    # Anger: vertical furrow lines between the brows.
    if g["furrow"]:
        by = _EYE_Y - 0.22 - g["brow_raise"] + 0.1
        for sx in (-1, 1):
            line(np.array([[sx * 0.06, by - 0.14], [sx * 0.045, by + 0.02]]), dark, 0.04)

    # Eyes.
    for name in ("eye_l", "eye_r"):
        poly(pts[name], (245, 245, 240))
        (icx, icy), (r, _) = pts[name + "_iris"]
        poly(ellipse(icx, icy, r, r), p.iris)
        poly(ellipse(icx, icy, r * 0.45, r * 0.45), (10, 10, 10))
        # Re-draw the skin above the upper lid so the iris never pokes out of the eye.
        up = pts[name + "_upper"]
        lid_cover = np.concatenate([up, up[::-1] + np.array([0.0, -0.12])])
        poly(lid_cover, skin)
        lo = pts[name][len(up) - 1:]  # lower lid (right corner back to left), closing the outline
        lo_line = np.vstack([up[-1:], lo, up[:1]])
        low_cover = np.concatenate([lo_line, lo_line[::-1] + np.array([0.0, 0.1])])
        poly(low_cover, skin)
        line(up, dark, 0.04)
    # Brows.
    brow_col = tuple(int(min(a, b * 0.8)) for a, b in zip(dark, p.hair)) if p.hair_style else dark
    for name in ("brow_l", "brow_r"):
        line(pts[name], brow_col, 0.1)
    # Nose: one side line and the nostrils.
    L = pts["landmarks"]
    nose_side = np.array([[0.05, _EYE_Y + 0.05], [0.09, _NOSE_Y - 0.08], [0.14, _NOSE_Y - 0.01]])
    line(nose_side * np.array([p.side, 1]), shade, 0.035)
    for k in (32, 34):
        nx, ny = L[k]
        poly(ellipse(nx, ny - 0.01, 0.04, 0.022), dark)
    line(L[31:36], shade, 0.03)
    # Disgust: wrinkle lines across the nose bridge.
    if g["wrinkle"]:
        for k in range(3):
            y = _EYE_Y + 0.1 + 0.07 * k
            for sx in (-1, 1):
                line(np.array([[sx * 0.02, y], [sx * 0.14, y - 0.05]]), dark, 0.035)
    # Mouth: lips, opening, teeth, and the line between the lips.
    poly(pts["mouth_outer"], p.lip)
    if g["mouth_open"] + g["lip_raise"] > 0.015:
        poly(pts["mouth_inner"], (60, 15, 20))
        if p.expression == 1 and p.teeth and g["mouth_open"] > 0.05:
            poly(pts["teeth"], (240, 240, 235))
    line(pts["mouth_line"], tuple(int(v * 0.45) for v in p.lip), 0.035)
    # Contempt: a crease beside the raised corner.
    if g["dimple"]:
        cx, cy = pts["mouth_line"][-1 if p.side > 0 else 0]
        sx = 1.0 if p.side > 0 else -1.0
        crease = np.array([[cx + sx * 0.03, cy - 0.13], [cx + sx * 0.08, cy - 0.02], [cx + sx * 0.05, cy + 0.08]])
        line(crease, tuple(int(v * 0.55) for v in skin), 0.045)

    # Occluder: a rectangle or hand-like blob covering well under 15% of the face.
    if p.occlusion:
        ox, oy = rng.uniform(-0.75, 0.75) * W, rng.uniform(-0.6, 0.9) * H
        colour = tuple(int(v) for v in (rng.integers(0, 256, 3) if p.occlusion == 1 else
                                       np.clip(np.array(skin) * rng.uniform(0.8, 1.1), 0, 255)))
        if p.occlusion == 1:
            w, h = rng.uniform(0.35, 0.7), rng.uniform(0.3, 0.6)
            poly(np.array([[ox - w / 2, oy - h / 2], [ox + w / 2, oy - h / 2], [ox + w / 2, oy + h / 2],
                           [ox - w / 2, oy + h / 2]]), colour, False)
        else:
            poly(ellipse(ox, oy, 0.26, 0.2), colour, False)
            ang = rng.uniform(-0.5, 0.5) - math.pi / 2
            for k in range(4):
                a = ang + (k - 1.5) * 0.3
                tip = np.array([[ox + 0.1 * math.cos(a), oy + 0.1 * math.sin(a)],
                                [ox + 0.42 * math.cos(a), oy + 0.42 * math.sin(a)]])
                line(tip, colour, 0.09, False)


    # Pose every recorded shape (and the landmarks) with two transform calls, then draw in order.
    lmk_at = len(ops)
    ops.append((L, True, (), -1))
    posed: list[np.ndarray | None] = [None] * len(ops)
    for features in (True, False):
        sel = [i for i, o in enumerate(ops) if o[1] == features]
        if not sel:
            continue
        allp = T(np.concatenate([ops[i][0] for i in sel]), features)
        ends = np.cumsum([len(ops[i][0]) for i in sel])[:-1]
        for i, part in zip(sel, np.split(allp, ends)):
            posed[i] = part
    for (_, _, fill, width), q in zip(ops[:lmk_at], posed[:lmk_at]):
        if width:
            d.line(_poly(q), fill=fill, width=width, joint="curve")
        else:
            d.polygon(_poly(q), fill=fill)
    lmk_canvas = posed[lmk_at]

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
    out = arr.astype(np.uint8)
    lmk = (lmk_canvas / ss).astype(np.float32)
    return out, lmk


def face_params(seed: int, index: int, difficulty: float = 1.0) -> FaceParams:
    """The parameters of face ``index`` of the dataset with ``seed``: a pure function of the arguments."""
    return sample_params(np.random.default_rng([int(seed), int(index)]), difficulty)


def synth_arrays(n: int, seed: int = 0, size: int = 64, difficulty: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """In-memory faces: ``(images uint8 (n, size, size, 3), expression int64 (n,), valence float32 (n,),
    arousal float32 (n,))``. Face ``i`` is the same face :func:`generate` writes as index ``i`` (before JPEG)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    images = np.empty((n, size, size, 3), np.uint8)
    expr = np.empty(n, np.int64)
    val = np.empty(n, np.float32)
    aro = np.empty(n, np.float32)
    for i in range(n):
        p = face_params(seed, i, difficulty)
        images[i], _ = render_face(p, size)
        expr[i], val[i], aro[i] = p.expression, p.valence, p.arousal
    return images, expr, val, aro


def _id_width(n: int) -> int:
    return max(6, len(str(max(n - 1, 0))))


def _write_range(out_dir: str, seed: int, size: int, n: int, start: int, stop: int, difficulty: float = 1.0) -> int:
    out = Path(out_dir)
    w = _id_width(n)
    for i in range(start, stop):
        p = face_params(seed, i, difficulty)
        img, lmk = render_face(p, size)
        key = f"{i:0{w}d}"
        Image.fromarray(img).save(out / "images" / f"{key}.jpg", quality=JPEG_QUALITY, subsampling=2,
                                  optimize=False)
        ann = out / "annotations"
        np.save(ann / f"{key}_exp.npy", np.int64(p.expression))
        np.save(ann / f"{key}_val.npy", np.float64(p.valence))
        np.save(ann / f"{key}_aro.npy", np.float64(p.arousal))
        np.save(ann / f"{key}_lnd.npy", lmk.astype(np.float64).reshape(-1))
    return stop - start


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # respects container/taskset limits, unlike os.cpu_count()
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def generate(out_dir: str | Path, n: int, seed: int = 0, size: int = 128, workers: int | None = None,
             progress: bool = False, difficulty: float = 1.0) -> Path:
    """Write ``n`` synthetic faces in the AffectNet layout under ``out_dir`` and return its path.

    ``images/<id>.jpg`` (JPEG quality 95), ``annotations/<id>_exp.npy`` (int expression id),
    ``<id>_val.npy`` / ``<id>_aro.npy`` (float in [-1, 1]), ``<id>_lnd.npy`` (136 floats x1, y1, x2, y2 ...
    of the iBUG 68 landmarks in pixels), ``<id>`` the zero-padded index (at least 6 digits), plus ``synth.json``
    (n, seed, size, difficulty, generator version, complete). Bytes depend only on (n, seed, size, difficulty),
    not on ``workers``
    (default: the CPUs this process may use). Refuses a non-empty directory unless it is a previous synth
    output with the same n, seed and size, which is overwritten.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if size < 16:
        raise ValueError(f"size must be >= 16 pixels, got {size}")
    out = Path(out_dir)
    meta = {"generator": "affectkit.synth", "version": GENERATOR_VERSION, "n": int(n), "seed": int(seed),
            "size": int(size), "difficulty": float(difficulty)}
    marker = out / "synth.json"
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: exists and is not a directory")
    if out.exists() and any(out.iterdir()):
        if not marker.is_file():
            raise FileExistsError(f"{out}: directory is not empty and holds no synth.json; "
                                  "choose an empty or new directory")
        try:
            old = json.loads(marker.read_text())
        except (OSError, ValueError) as e:
            raise FileExistsError(f"{marker}: unreadable ({e}); refusing to overwrite {out}") from e
        if {k: old.get(k) for k in meta} != meta:
            raise FileExistsError(f"{out}: holds a synth dataset with different parameters "
                                  f"({ {k: old.get(k) for k in ('n', 'seed', 'size', 'version')} }); "
                                  "remove it or choose another directory")
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    # Written first with complete=false so an interrupted run is still recognised as ours and can be redone.
    marker.write_text(json.dumps({**meta, "complete": False}, indent=1))

    workers = _usable_cpus() if workers is None else max(1, int(workers))
    chunk = max(16, min(256, -(-n // (workers * 4))))
    ranges = [(s, min(n, s + chunk)) for s in range(0, n, chunk)]
    bar = None
    if progress:
        try:
            from tqdm import tqdm
            bar = tqdm(total=n, desc="synth", unit="img")
        except ImportError:  # pragma: no cover - tqdm is a dependency
            bar = None
    if workers == 1 or len(ranges) == 1:
        for s, e in ranges:
            done = _write_range(str(out), seed, size, n, s, e, difficulty)
            if bar is not None:
                bar.update(done)
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(ranges))) as ex:
            futs = [ex.submit(_write_range, str(out), seed, size, n, s, e, difficulty) for s, e in ranges]
            for f in futs:
                done = f.result()
                if bar is not None:
                    bar.update(done)
    if bar is not None:
        bar.close()
    marker.write_text(json.dumps({**meta, "complete": True,
                                  "expressions": list(EXPRESSIONS)}, indent=1))
    return out
