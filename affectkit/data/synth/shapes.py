"""Drawing primitives and the 68 iBUG landmarks of a face, in face units (half-width ~ 1, y down), before pose."""

from __future__ import annotations

import numpy as np

from affectkit.data.synth.params import FaceParams

EYE_Y, EYE_X, EYE_W, EYE_H = -0.2, 0.38, 0.17, 0.085
MOUTH_Y = 0.62
NOSE_Y = 0.3


def mouth_curves(g: dict, side: int, n: int = 25):
    """Outer/inner lip curves as functions of t in [-1, 1] (left corner to right corner)."""
    t = np.linspace(-1.0, 1.0, n)
    mw, op = g["mouth_w"], g["mouth_open"]
    # Corner lift per side; contempt raises one corner only.
    lift_l = g["curve"] + (g["asym"] if side < 0 else 0.0)
    lift_r = g["curve"] + (g["asym"] if side > 0 else 0.0)
    lift = np.where(t < 0, lift_l, lift_r) * t**2
    mid = MOUTH_Y - lift
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


def _head(p: FaceParams, out: dict[str, np.ndarray]) -> None:
    W, H = p.face_width, 1.3 * p.face_length
    # Head outline: ellipse with a tapered chin.
    th = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    taper = 1 - p.chin_taper * np.clip(np.sin(th), 0, None) ** 2
    out["face"] = np.stack([W * np.cos(th) * taper, H * np.sin(th)], 1)
    # Jaw: 17 points from just above eye level on the image-left side, round the chin, to the right side.
    jth = np.linspace(np.pi + 0.15, -0.15, 17)
    jtaper = 1 - p.chin_taper * np.clip(np.sin(jth), 0, None) ** 2
    out["jaw"] = np.stack([W * np.cos(jth) * jtaper, H * np.sin(jth)], 1)


def _eye_size(p: FaceParams, g: dict) -> tuple[float, float]:
    """(upper-lid height, lower-lid scale); happy: the cheek raise pushes the lower lid up."""
    return EYE_H * g["eye_open"], (0.75 if p.expression != 1 else 0.45)


def _brows_and_eyes(p: FaceParams, g: dict, out: dict[str, np.ndarray]) -> None:
    # Brows: centre line from outer (t=0) to inner (t=1), both sides.
    tb = np.linspace(0, 1, 9)
    base = EYE_Y - 0.22 - g["brow_raise"]
    inner_x = 0.13 + g["brow_inner"]
    bx = 0.62 + (inner_x - 0.62) * tb
    by = base - g["brow_arch"] * np.sin(np.pi * tb) * 1.4 - g["brow_tilt"] * tb**2
    out["brow_l"] = np.stack([-bx, by], 1)  # image-left, outer -> inner
    out["brow_r"] = np.stack([bx, by], 1)
    # Eyes: lids as functions of t in [-1, 1].
    te = np.linspace(-1, 1, 15)
    eh, lower_scale = _eye_size(p, g)
    for name, cx in (("eye_l", -EYE_X), ("eye_r", EYE_X)):
        up = EYE_Y - eh * (1 - te**2) ** 0.7
        lo = EYE_Y + eh * lower_scale * (1 - te**2) ** 0.9
        ex = cx + te * EYE_W
        out[name] = np.concatenate([np.stack([ex, up], 1), np.stack([ex[::-1], lo[::-1]], 1)[1:-1]])
        out[name + "_upper"] = np.stack([ex, up], 1)
        r = min(0.075, eh * 0.95)
        out[name + "_iris"] = np.array([[cx + p.gaze[0] * 0.06, EYE_Y + p.gaze[1] * 0.03 - 0.1 * eh], [r, r]])


def _mouth(mouth: tuple, out: dict[str, np.ndarray]) -> None:
    mx, ou, ol, iu, il = mouth
    out["mouth_outer"] = np.concatenate([np.stack([mx, ou], 1), np.stack([mx[::-1], ol[::-1]], 1)[1:-1]])
    out["mouth_inner"] = np.concatenate([np.stack([mx, iu], 1), np.stack([mx[::-1], il[::-1]], 1)[1:-1]])
    out["mouth_line"] = np.stack([mx, (iu + il) / 2], 1)
    out["teeth"] = np.concatenate(
        [np.stack([mx, iu], 1), np.stack([mx[::-1], np.minimum(il, iu + 0.06)[::-1]], 1)[1:-1]]
    )


def _landmarks(p: FaceParams, g: dict, out: dict[str, np.ndarray], mouth: tuple) -> np.ndarray:
    """The 68 iBUG points: jaw, brows, nose, eyes (36/45 outer corners, 39/42 inner), lips."""
    L = np.zeros((68, 2))
    L[0:17] = out["jaw"]
    idx = [0, 2, 4, 6, 8]
    L[17:22] = out["brow_l"][idx]
    L[22:27] = out["brow_r"][idx][::-1]
    L[27:31] = np.stack([np.zeros(4), np.linspace(EYE_Y, NOSE_Y - 0.08, 4)], 1)
    nos = np.array(
        [
            [-0.13, NOSE_Y - 0.02],
            [-0.065, NOSE_Y + 0.02],
            [0, NOSE_Y + 0.035],
            [0.065, NOSE_Y + 0.02],
            [0.13, NOSE_Y - 0.02],
        ]
    )
    if g["wrinkle"]:
        nos[:, 1] -= 0.03  # nose wrinkler lifts the nostrils
    L[31:36] = nos
    # Each eye runs clockwise in the image.
    eh, lower_scale = _eye_size(p, g)
    ts = np.array([-1, -1 / 3, 1 / 3, 1, 1 / 3, -1 / 3])
    upper = np.array([True, True, True, True, False, False])
    ey = np.where(upper, EYE_Y - eh * (1 - ts**2) ** 0.7, EYE_Y + eh * lower_scale * (1 - ts**2) ** 0.9)
    for k, cx in enumerate((-EYE_X, EYE_X)):
        L[36 + 6 * k : 42 + 6 * k] = np.stack([cx + ts * EYE_W, ey], 1)
    # Mouth: sample the lip curves at fixed positions t along the mouth.
    mx, ou, ol, iu, il = mouth
    tg = np.linspace(-1, 1, len(mx))
    mid = (iu + il) / 2
    for sl, curve, tq in (
        (slice(48, 55), ou, (-1, -0.6, -0.3, 0, 0.3, 0.6, 1)),
        (slice(55, 60), ol, (0.6, 0.3, 0, -0.3, -0.6)),
        (slice(60, 61), mid, (-0.92,)),
        (slice(61, 64), iu, (-0.4, 0, 0.4)),
        (slice(64, 65), mid, (0.92,)),
        (slice(65, 68), il, (0.4, 0, -0.4)),
    ):
        L[sl] = np.stack([np.interp(tq, tg, mx), np.interp(tq, tg, curve)], 1)
    return L


def canonical_points(p: FaceParams, g: dict) -> dict[str, np.ndarray]:
    """All drawing primitives and the 68 landmarks (key ``landmarks``) in face units, before pose."""
    out: dict[str, np.ndarray] = {}
    _head(p, out)
    _brows_and_eyes(p, g, out)
    mouth = mouth_curves(g, p.side)
    _mouth(mouth, out)
    out["landmarks"] = _landmarks(p, g, out, mouth)
    return out
