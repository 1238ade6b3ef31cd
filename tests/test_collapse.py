"""Collapse detection: constant predictors are flagged, healthy random ones are not."""

from __future__ import annotations

import numpy as np
import pytest

from affectkit.collapse import detect_collapse


def healthy(n: int = 500, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(8), n), rng.uniform(-1, 1, n), np.tanh(rng.normal(0, 0.6, n))


def test_healthy_random_predictor_triggers_nothing():
    for seed in range(5):
        assert detect_collapse(*healthy(seed=seed)) == []


def test_constant_predictor_triggers_every_check():
    n = 200
    prob = np.tile(np.eye(8)[1] * 0.9 + 0.0125, (n, 1))
    out = detect_collapse(prob, np.full(n, 0.3), np.full(n, 0.3))
    text = "\n".join(out)
    assert "Happy is 100.0% of 200 predictions" in text
    assert "only 1 of 8 classes ever predicted (Happy)" in text
    assert "valence barely varies" in text and "arousal barely varies" in text
    assert len(out) == 4


def test_dominant_class_threshold():
    pred = np.r_[np.full(85, 6), np.tile(np.arange(8), 2)[:15]]
    out = detect_collapse(pred)
    assert len(out) == 1 and "Anger is 87.0% of 100" in out[0]  # 85 + two more 6s from the tile
    assert detect_collapse(pred, max_class_share=0.9) == []
    # 6 classes used, none dominant: not flagged; 3 used: flagged
    assert detect_collapse(np.arange(60) % 6) == []
    out = detect_collapse(np.arange(60) % 3)
    assert len(out) == 1 and out[0].startswith("only 3 of 8 classes")
    # too few predictions to judge the number of classes
    assert detect_collapse(np.array([0, 1])) == []


def test_valence_at_bounds():
    rng = np.random.default_rng(1)
    v = np.where(rng.random(300) < 0.7, np.sign(rng.normal(size=300)) * 0.99, rng.uniform(-1, 1, 300))
    out = detect_collapse(None, valence_pred=v)
    assert len(out) == 1 and out[0].startswith("valence piled at the bounds")
    assert detect_collapse(None, valence_pred=v, bound_share=0.8) == []
    # arousal saturated at the same bound (e.g. tanh output pushed to +1)
    out = detect_collapse(None, arousal_pred=np.full(50, 0.999) - rng.uniform(0, 0.2, 50) * (np.arange(50) % 2))
    assert any(w.startswith("arousal piled at the bounds") for w in out)


def test_nan_predictions_reported():
    v = np.r_[np.linspace(-1, 1, 20), [np.nan]]
    out = detect_collapse(None, valence_pred=v)
    assert out == ["valence: 1 of 21 predictions are NaN or infinite"]


def test_bad_input():
    with pytest.raises(ValueError, match="columns"):
        detect_collapse(np.zeros((3, 7)))
    with pytest.raises(ValueError, match="integer ids"):
        detect_collapse(np.array([0, 9]))
    assert detect_collapse(np.zeros((0, 8))) == []
