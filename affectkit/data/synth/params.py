"""Face parameters: labels, appearance and nuisance of one synthetic face, and the expression geometry."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from affectkit.labels import NUM_EXPRESSIONS

__all__ = ["VA_PROTOTYPES", "VA_SPREAD", "FaceParams", "face_params", "sample_params"]

VA_SPREAD = 0.2

# (valence, arousal) prototype of each class, AffectNet order.
VA_PROTOTYPES = np.array(
    [
        (0.0, 0.0),  # Neutral
        (0.7, 0.35),  # Happy
        (-0.65, -0.35),  # Sad
        (0.2, 0.75),  # Surprise
        (-0.55, 0.7),  # Fear
        (-0.65, 0.3),  # Disgust
        (-0.55, 0.6),  # Anger
        (-0.45, 0.1),  # Contempt
    ]
)

_SKIN_TONES = np.array(
    [
        (255, 224, 196),
        (241, 194, 160),
        (224, 172, 130),
        (198, 144, 104),
        (168, 117, 80),
        (141, 94, 62),
        (110, 72, 48),
        (232, 190, 172),
    ],
    dtype=float,
)
_HAIR_COLOURS = np.array(
    [
        (20, 16, 14),
        (60, 40, 25),
        (110, 72, 40),
        (170, 130, 80),
        (220, 190, 130),
        (130, 45, 25),
        (150, 150, 150),
    ],
    dtype=float,
)
_IRIS_COLOURS = np.array([(60, 40, 25), (90, 60, 30), (60, 100, 140), (70, 110, 70), (30, 25, 20)], dtype=float)


@dataclass
class FaceParams:
    """Everything that defines one face. Geometry is in "face units" (face half-width ~ 1, y down)."""

    expression: int
    valence: float
    arousal: float
    intensity: float  # scales the class markers, in [0.85, 1.15]
    side: int  # +1/-1: which side a one-sided marker (contempt, disgust) is on
    teeth: bool  # happy: show teeth when the mouth is open
    face_width: float  # half-width of the head, face units
    face_length: float  # half-height / 1.3
    chin_taper: float
    skin: tuple[int, int, int]
    lip: tuple[int, int, int]
    hair: tuple[int, int, int]
    hair_style: int  # 0 none, 1 short cap, 2 long, 3 cap with fringe
    iris: tuple[int, int, int]
    gaze: tuple[float, float]
    frac: float  # face height / image size, in [0.6, 0.9]
    center: tuple[float, float]  # face centre, fractions of the image size
    roll: float  # in-plane rotation, degrees
    yaw: float  # degrees; drawn by shifting/squeezing the features on a sphere
    bg_kind: int  # 0 solid, 1 gradient, 2 shapes, 3 texture + shapes
    bg_colours: tuple[tuple[int, int, int], tuple[int, int, int]]
    light_angle: float
    light_strength: float
    blur: float  # Gaussian blur radius at 64 px (scaled with size); 0 = none
    noise: float  # Gaussian noise sigma, uint8 units
    occlusion: int  # 0 none, 1 rectangle, 2 hand-like blob
    detail_seed: int  # seeds the fine detail (background shapes, texture, noise, occluder placement)


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
        r, g, b = (int(round(v)) for v in a)
        return r, g, b

    return FaceParams(
        expression=expr,
        valence=float(va[0]),
        arousal=float(va[1]),
        intensity=float(rng.uniform(0.85, 1.15)),
        side=int(rng.choice([-1, 1])),
        teeth=bool(rng.random() < 0.6),
        face_width=float(rng.uniform(0.88, 1.08)),
        face_length=float(rng.uniform(0.92, 1.08)),
        chin_taper=float(rng.uniform(0.1, 0.35)),
        skin=col(skin),
        lip=col(lip),
        hair=col(hair),
        hair_style=int(rng.integers(4)),
        iris=col(iris),
        gaze=(float(rng.uniform(-0.3, 0.3)), float(rng.uniform(-0.2, 0.2))),
        frac=frac,
        center=(float(0.5 + rng.uniform(-slack, slack)), float(0.5 + rng.uniform(-slack, slack))),
        roll=float(rng.uniform(-15, 15)) * d,
        yaw=float(rng.uniform(-15, 15)) * d,
        bg_kind=int(rng.integers(4)),
        bg_colours=(col(bg[0]), col(bg[1])),
        light_angle=float(rng.uniform(0, 2 * math.pi)),
        light_strength=float(rng.uniform(0.0, 0.3)) * d,
        blur=float(rng.uniform(0.3, 0.8)) if rng.random() < 0.3 * d else 0.0,
        noise=float(rng.uniform(0.0, 7.0)) * d,
        occlusion=occlusion,
        detail_seed=int(rng.integers(2**31)),
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
        wrinkle=m.get("wrinkle", 0.0),
        dimple=m.get("dimple", 0.0),
        folds=m.get("folds", 0.0),
        furrow=m.get("furrow", 0.0),
    )


def face_params(seed: int, index: int, difficulty: float = 1.0) -> FaceParams:
    """The parameters of face ``index`` of the dataset with ``seed``: a pure function of the arguments."""
    return sample_params(np.random.default_rng([int(seed), int(index)]), difficulty)
