"""Metrics against scikit-learn, scipy and the krippendorff package, hand-computed cases and undefined cases."""

from __future__ import annotations

import json
import math
import time
import warnings

import krippendorff
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import pearsonr
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    cohen_kappa_score,
    f1_score,
    roc_auc_score,
)

from affectkit.labels import EXPRESSIONS
from affectkit.metrics import (
    CLASSIFICATION_SCALARS,
    REGRESSION_SCALARS,
    UndefinedMetricWarning,
    bootstrap_ci,
    ccc,
    classification_metrics,
    krippendorff_alpha_nominal,
    multitask_metrics,
    pearson_corr,
    regression_metrics,
    rmse,
    sagr,
    selection_score,
)

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def quiet(fn, *args, **kwargs):
    """Call ignoring warnings (ours and sklearn's) for property tests over degenerate inputs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def same(a: float, b: float, tol: float = 1e-9) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol


def direct_ccc(t: np.ndarray, p: np.ndarray) -> float:
    cov = np.mean((t - t.mean()) * (p - p.mean()))
    return 2 * cov / (t.var() + p.var() + (t.mean() - p.mean()) ** 2)


# ---------------------------------------------------------------- hand-computed tiny cases


def test_classification_hand_computed():
    t = [0, 0, 1, 1]
    pred = [0, 1, 1, 1]
    prob = np.eye(8)[pred] * 0.9 + 0.1 / 8
    m = classification_metrics(t, prob)
    assert m["accuracy"] == pytest.approx(0.75)
    # class 0: P=1, R=1/2, F1=2/3; class 1: P=2/3, R=1, F1=4/5; others absent from both -> left out
    assert m["f1_macro"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert m["f1_weighted"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    # p_o = 3/4, p_e = (2*1 + 2*3)/16 = 1/2
    assert m["kappa"] == pytest.approx(0.5)
    # coincidence o = [[2,1],[1,4]], n_c = [3,5], n = 8: alpha = 1 - 7 * 2 / (64 - 34)
    assert m["krippendorff_alpha"] == pytest.approx(1 - 14 / 30)
    assert m["per_class"]["Neutral"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert m["per_class"]["Happy"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    sad = m["per_class"]["Sad"]
    assert math.isnan(sad["precision"]) and math.isnan(sad["recall"]) and math.isnan(sad["f1"])
    assert sad["support"] == 0
    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (8, 8) and cm[0, 0] == 1 and cm[0, 1] == 1 and cm[1, 1] == 2 and cm.sum() == 4
    # perfectly ranked scores for both present classes
    assert m["auc_roc"] == pytest.approx(
        roc_auc_score([1, 1, 0, 0], prob[:, 0]) / 2 + roc_auc_score([0, 0, 1, 1], prob[:, 1]) / 2
    )


def test_auc_hand_computed_with_ties():
    t = np.array([0, 0, 1, 1])
    scores = np.zeros((4, 8))
    scores[:, 0] = [0.8, 0.5, 0.5, 0.1]  # one tie between a positive and a negative
    scores[:, 1] = 1 - scores[:, 0]
    m = classification_metrics(t, scores)
    # class 0: pairs (0.8>0.5), (0.8>0.1), (0.5=0.5 -> 1/2), (0.5>0.1): 3.5/4
    assert m["auc_roc"] == pytest.approx(3.5 / 4)
    # class 0 AP: thresholds 0.8 (P=1,R=1/2), 0.5 (P=2/3,R=1): 1/2*1 + 1/2*2/3
    ap0 = 0.5 + 0.5 * 2 / 3
    ap1 = average_precision_score(t == 1, scores[:, 1])
    assert m["auc_pr"] == pytest.approx((ap0 + ap1) / 2)


def test_f1_for_class_predicted_but_never_true_counts_as_zero():
    m = quiet(classification_metrics, [0, 0, 0], np.array([0, 0, 2]))
    # class 0: F1 = 2*2/(2*2+0+1) = 0.8; class 2: predicted, never true: F1 = 0
    assert m["f1_macro"] == pytest.approx((0.8 + 0.0) / 2)
    assert m["f1_macro"] == pytest.approx(f1_score([0, 0, 0], [0, 0, 2], average="macro"))
    assert m["f1_macro"] != pytest.approx(quiet(f1_score, [0, 0, 0], [0, 0, 2], labels=range(8), average="macro"))


def test_regression_hand_computed():
    assert regression_metrics([1, 2, 3], [1, 2, 3]) == pytest.approx({"rmse": 0, "corr": 1, "sagr": 1, "ccc": 1})
    m = regression_metrics([-1, 0, 1], [1, 0, -1])
    assert m["ccc"] == pytest.approx(-1) and m["corr"] == pytest.approx(-1)
    assert m["sagr"] == pytest.approx(1 / 3)
    assert m["rmse"] == pytest.approx(math.sqrt(8 / 3))
    # shifted by 1: corr 1, ccc = 2*(2/3) / (2/3 + 2/3 + 1) = 4/7
    assert ccc([1, 2, 3], [2, 3, 4]) == pytest.approx(4 / 7)
    assert pearson_corr([1, 2, 3], [2, 3, 4]) == pytest.approx(1)


def test_sagr_zero_is_its_own_sign():
    assert sagr([0.0, 0.5], [0.1, 0.5]) == pytest.approx(0.5)
    assert sagr([0.0, -0.5], [0.0, -0.1]) == pytest.approx(1.0)
    assert sagr([0.3], [0.0]) == 0.0


# ---------------------------------------------------------------- property tests against references


@st.composite
def classification_case(draw):
    n = draw(st.integers(1, 40))
    pool = draw(st.lists(st.integers(0, 7), min_size=1, max_size=8, unique=True))
    t = np.array(draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n)))
    # scores on a coarse grid so that ties (in argmax and in ranking) are frequent
    grid = draw(st.sampled_from([2, 4, 100]))
    s = np.array(draw(st.lists(st.integers(0, grid), min_size=8 * n, max_size=8 * n)), dtype=float).reshape(n, 8)
    return t, s + 1e-3  # strictly positive so rows can be normalised


@FAST
@given(classification_case())
def test_classification_matches_sklearn(case):
    t, s = case
    pred = s.argmax(axis=1)
    m = quiet(classification_metrics, t, s)
    assert m["accuracy"] == pytest.approx(accuracy_score(t, pred))
    assert m["f1_macro"] == pytest.approx(quiet(f1_score, t, pred, average="macro"))
    assert m["f1_weighted"] == pytest.approx(quiet(f1_score, t, pred, average="weighted"))
    assert same(m["kappa"], quiet(cohen_kappa_score, t, pred))
    if np.unique(np.r_[t, pred]).size >= 2:
        ref = krippendorff.alpha(np.stack([t, pred]).astype(float), level_of_measurement="nominal")
        assert m["krippendorff_alpha"] == pytest.approx(ref)
    else:
        assert math.isnan(m["krippendorff_alpha"])
    present = np.unique(t)
    if present.size >= 2:
        roc = np.mean([roc_auc_score(t == c, s[:, c]) for c in present])
        ap = np.mean([average_precision_score(t == c, s[:, c]) for c in present])
        assert m["auc_roc"] == pytest.approx(roc)
        assert m["auc_pr"] == pytest.approx(ap)
    else:
        assert math.isnan(m["auc_roc"]) and math.isnan(m["auc_pr"])
    cm = np.array(m["confusion_matrix"])
    assert (cm.sum(axis=1) == np.bincount(t, minlength=8)).all()


def test_auc_matches_sklearn_multiclass_ovr_when_all_classes_present():
    rng = np.random.default_rng(0)
    t = np.r_[np.arange(8), rng.integers(0, 8, 300)]
    logits = rng.normal(size=(t.size, 8)) + 1.5 * np.eye(8)[t]
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    m = classification_metrics(t, prob)
    assert m["auc_roc"] == pytest.approx(roc_auc_score(t, prob, multi_class="ovr", average="macro"))
    assert m["auc_pr"] == pytest.approx(average_precision_score(np.eye(8)[t], prob, average="macro"))


@st.composite
def regression_case(draw):
    n = draw(st.integers(0, 30))
    value = st.one_of(st.floats(-1, 1, allow_subnormal=False), st.sampled_from([-1.0, 0.0, 0.5, 1.0]))
    t = np.array(draw(st.lists(st.one_of(value, st.just(float("nan"))), min_size=n, max_size=n)), dtype=float)
    p = np.array(draw(st.lists(value, min_size=n, max_size=n)), dtype=float)
    return t, p


@FAST
@given(regression_case())
def test_regression_matches_references(case):
    t_all, p_all = case
    keep = ~np.isnan(t_all)
    t, p = t_all[keep], p_all[keep]
    m = quiet(regression_metrics, t_all, p_all)
    if t.size == 0:
        assert all(math.isnan(m[k]) for k in REGRESSION_SCALARS)
        return
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean((t - p) ** 2)))
    assert m["sagr"] == pytest.approx(np.mean(np.sign(t) == np.sign(p)))
    t_const, p_const = np.ptp(t) == 0, np.ptp(p) == 0
    if t_const or p_const:
        assert math.isnan(m["corr"])
    elif np.ptp(t) > 1e-6 and np.ptp(p) > 1e-6:
        assert m["corr"] == pytest.approx(pearsonr(t, p)[0], abs=1e-9)
    if t_const and p_const and t[0] == p[0]:
        assert math.isnan(m["ccc"])
    elif (t_const or np.ptp(t) > 1e-6) and (p_const or np.ptp(p) > 1e-6):
        # nan_ok: two single values a hair apart (1e-236) underflow the denominator in both formulas
        assert m["ccc"] == pytest.approx(direct_ccc(t, p), abs=1e-9, nan_ok=True)


@st.composite
def reliability_case(draw):
    coders = draw(st.integers(2, 4))
    units = draw(st.integers(1, 15))
    cell = st.one_of(st.integers(0, 3).map(float), st.just(float("nan")))
    return np.array(draw(st.lists(cell, min_size=coders * units, max_size=coders * units))).reshape(coders, units)


@FAST
@given(reliability_case())
def test_krippendorff_general_form_matches_package(data):
    mine = quiet(krippendorff_alpha_nominal, data)
    try:
        ref = quiet(krippendorff.alpha, data, level_of_measurement="nominal")
    except ValueError:  # the package refuses a single-value domain; ours says NaN
        ref = float("nan")
    assert same(mine, float(ref))


def test_classification_alpha_equals_general_alpha():
    rng = np.random.default_rng(3)
    t = rng.integers(0, 8, 200)
    pred = np.where(rng.random(200) < 0.6, t, rng.integers(0, 8, 200))
    assert quiet(classification_metrics, t, pred)["krippendorff_alpha"] == pytest.approx(
        krippendorff_alpha_nominal(t, pred)
    )


# ---------------------------------------------------------------- undefined cases: NaN plus a warning


def test_empty_input_is_nan_with_warning():
    with pytest.warns(UndefinedMetricWarning, match="no samples"):
        m = classification_metrics([], np.zeros((0, 8)))
    assert all(math.isnan(m[k]) for k in CLASSIFICATION_SCALARS)
    assert np.array(m["confusion_matrix"]).sum() == 0
    with pytest.warns(UndefinedMetricWarning, match="no samples"):
        r = regression_metrics([], [])
    assert all(math.isnan(r[k]) for k in REGRESSION_SCALARS)
    with pytest.warns(UndefinedMetricWarning):
        assert math.isnan(rmse([float("nan")], [0.3]))


def test_constant_series():
    t = np.array([-0.5, 0.0, 0.5, 1.0])
    with pytest.warns(UndefinedMetricWarning, match="y_pred is constant"):
        assert math.isnan(pearson_corr(t, np.full(4, 0.2)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UndefinedMetricWarning)
        # only the prediction constant: CCC is defined (cov = 0) -> exactly 0
        assert ccc(t, np.full(4, 0.2)) == 0.0
        # two different constants: the denominator is (mean difference)^2 > 0
        assert ccc(np.full(3, 0.1), np.full(3, 0.4)) == 0.0
    with pytest.warns(UndefinedMetricWarning) as record:
        m = regression_metrics(np.full(5, 0.1), np.full(5, 0.1))
    text = " ".join(str(w.message) for w in record)
    assert "Pearson" in text and "CCC" in text and "both constant" in text
    assert record[0].filename == __file__  # attributed to the caller, not to affectkit internals
    assert math.isnan(m["ccc"]) and math.isnan(m["corr"]) and m["rmse"] == 0 and m["sagr"] == 1


def test_constant_float_that_is_not_exactly_representable():
    # mean of identical 0.1s is not exactly 0.1 in floating point; must still count as constant
    t = np.linspace(-1, 1, 7)
    with pytest.warns(UndefinedMetricWarning):
        assert math.isnan(pearson_corr(t, np.full(7, 0.1)))


def test_class_missing_from_truth_is_skipped_in_auc():
    rng = np.random.default_rng(1)
    t = rng.choice([0, 1, 6], size=60)
    s = rng.random((60, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UndefinedMetricWarning)
        m = classification_metrics(t, s)
    assert m["auc_roc"] == pytest.approx(np.mean([roc_auc_score(t == c, s[:, c]) for c in (0, 1, 6)]))


def test_single_class_in_truth():
    t = np.zeros(10, dtype=int)
    s = np.random.default_rng(0).random((10, 8))
    with pytest.warns(UndefinedMetricWarning, match="fewer than 2 classes"):
        m = classification_metrics(t, s)
    assert math.isnan(m["auc_roc"]) and math.isnan(m["auc_pr"])
    assert m["accuracy"] == pytest.approx(np.mean(s.argmax(1) == 0))


def test_same_single_class_everywhere_kappa_and_alpha_undefined():
    with pytest.warns(UndefinedMetricWarning) as record:
        m = classification_metrics([3, 3, 3], [3, 3, 3])
    text = " ".join(str(w.message) for w in record)
    assert "kappa" in text and "alpha" in text
    assert math.isnan(m["kappa"]) and math.isnan(m["krippendorff_alpha"])
    assert m["accuracy"] == 1.0 and m["f1_macro"] == 1.0


def test_integer_predictions_give_nan_auc_with_warning():
    t = [0, 1, 2, 1]
    with pytest.warns(UndefinedMetricWarning, match="1-D class predictions"):
        m = classification_metrics(t, [0, 1, 1, 1])
    assert math.isnan(m["auc_roc"]) and math.isnan(m["auc_pr"])
    assert m["accuracy"] == pytest.approx(0.75)
    with pytest.warns(UndefinedMetricWarning) as record:
        m = classification_metrics(t * 10, [0, 1, 1, 1] * 10, ci=True, n_boot=50)
    assert len(record) == 1  # the CI of an already-undefined AUC is NaN without a second warning
    assert all(math.isnan(x) for x in m["auc_roc_ci"]) and m["accuracy_ci"][0] < 0.75 < m["accuracy_ci"][1]


def test_missing_labels_are_ignored():
    rng = np.random.default_rng(2)
    t = rng.integers(0, 8, 50)
    s = rng.random((50, 8))
    t_missing = t.copy()
    t_missing[::5] = -1
    keep = t_missing >= 0
    a = classification_metrics(t_missing, s)
    b = classification_metrics(t[keep], s[keep])
    assert a == b
    v = rng.uniform(-1, 1, 50)
    vp = v + rng.normal(0, 0.2, 50)
    v_missing = v.copy()
    v_missing[::4] = np.nan
    keep = ~np.isnan(v_missing)
    assert regression_metrics(v_missing, vp) == regression_metrics(v[keep], vp[keep])


def test_bad_input_errors():
    with pytest.raises(ValueError, match="NaN"):
        rmse([0.1, 0.2], [0.1, float("nan")])
    with pytest.raises(ValueError, match="length"):
        rmse([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="not in labels"):
        classification_metrics([0, 9], np.zeros((2, 8)))
    with pytest.raises(ValueError, match="columns"):
        classification_metrics([0, 1], np.zeros((2, 7)))
    with pytest.raises(ValueError, match="NaN"):
        classification_metrics([0, 1], np.full((2, 8), np.nan))


def test_custom_labels_and_names():
    m = classification_metrics(
        [10, 20, 20], np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), labels=[10, 20], names=["a", "b"]
    )
    assert set(m["per_class"]) == {"a", "b"}
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["confusion_matrix"] == [[1, 0], [1, 1]]


# ---------------------------------------------------------------- bootstrap


@pytest.mark.parametrize("fn", [rmse, pearson_corr, sagr, ccc])
def test_vectorised_bootstrap_equals_loop(fn):
    rng = np.random.default_rng(4)
    t = rng.uniform(-1, 1, 80)
    p = np.round(t + rng.normal(0, 0.4, 80), 1)
    fast = bootstrap_ci(fn, t, p, n_boot=200, seed=7)
    slow = bootstrap_ci(lambda a, b: fn(a, b), t, p, n_boot=200, seed=7)
    assert fast == pytest.approx(slow, abs=1e-12)
    assert fast[0] < fn(t, p) < fast[1]


def test_classification_ci_matches_loop_over_references():
    rng = np.random.default_rng(5)
    t = rng.integers(0, 8, 120)
    s = rng.random((120, 8)) + np.eye(8)[t] * 0.5
    m = classification_metrics(t, s, ci=True, n_boot=100, seed=3)
    for key, ref in [
        ("accuracy", lambda a, b: accuracy_score(a, b.argmax(1))),
        ("f1_macro", lambda a, b: f1_score(a, b.argmax(1), average="macro")),
        ("kappa", lambda a, b: cohen_kappa_score(a, b.argmax(1))),
        ("auc_roc", lambda a, b: classification_metrics(a, b)["auc_roc"]),
        ("auc_pr", lambda a, b: classification_metrics(a, b)["auc_pr"]),
    ]:
        assert m[f"{key}_ci"] == pytest.approx(list(quiet(bootstrap_ci, ref, t, s, n_boot=100, seed=3))), key
        assert m[f"{key}_ci"][0] <= m[key] <= m[f"{key}_ci"][1]


def test_bootstrap_reproducible_and_narrows_with_n():
    rng = np.random.default_rng(6)
    t = rng.uniform(-1, 1, 1000)
    p = t + rng.normal(0, 0.5, 1000)
    assert bootstrap_ci(ccc, t, p, n_boot=300, seed=1) == bootstrap_ci(ccc, t, p, n_boot=300, seed=1)
    assert bootstrap_ci(ccc, t, p, n_boot=300, seed=1) != bootstrap_ci(ccc, t, p, n_boot=300, seed=2)
    small = bootstrap_ci(ccc, t[:100], p[:100], n_boot=300)
    large = bootstrap_ci(ccc, t, p, n_boot=300)
    assert large[1] - large[0] < small[1] - small[0]
    narrow = bootstrap_ci(ccc, t, p, n_boot=300, alpha=0.5)
    assert narrow[1] - narrow[0] < large[1] - large[0]


def test_bootstrap_undefined_cases():
    with pytest.warns(UndefinedMetricWarning, match="empty"):
        assert all(math.isnan(x) for x in bootstrap_ci(rmse, [], []))
    with pytest.warns(UndefinedMetricWarning, match="every resample"):
        low, high = bootstrap_ci(pearson_corr, [0.1, 0.2, 0.3], [0.5, 0.5, 0.5], n_boot=20)
    assert math.isnan(low) and math.isnan(high)
    with pytest.raises(ValueError, match="first dimension"):
        bootstrap_ci(rmse, [0.1, 0.2], [0.1])


def test_bootstrap_speed():
    rng = np.random.default_rng(8)
    n = 5000
    v = rng.uniform(-1, 1, n)
    t = rng.integers(0, 8, n)
    s = rng.random((n, 8))
    start = time.perf_counter()
    regression_metrics(v, v + rng.normal(0, 0.3, n), ci=True, n_boot=1000)
    regression_time = time.perf_counter() - start
    start = time.perf_counter()
    classification_metrics(t, s, ci=True, n_boot=1000)
    classification_time = time.perf_counter() - start
    # measured ~0.2 s and ~1.5 s on a shared 2-core machine; bounds leave room for load
    assert regression_time < 5 and classification_time < 15


# ---------------------------------------------------------------- multitask and selection


def test_multitask_missing_labels_per_task_and_json():
    rng = np.random.default_rng(9)
    n = 40
    t = rng.integers(0, 8, n)
    t[:10] = -1
    s = rng.random((n, 8))
    v, a = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n)
    v[10:25] = np.nan
    vp, ap = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n)
    m = multitask_metrics(t, s, v, vp, a, ap, ci=True, n_boot=50)
    assert (m["n"], m["n_expression"], m["n_valence"], m["n_arousal"]) == (40, 30, 25, 40)
    assert m["accuracy"] == classification_metrics(t[10:], s[10:])["accuracy"]
    keep = ~np.isnan(v)
    assert m["valence"]["ccc"] == pytest.approx(ccc(v[keep], vp[keep]))
    assert m["arousal"]["rmse"] == pytest.approx(rmse(a, ap))
    assert len(m["valence"]["ccc_ci"]) == 2 and len(m["auc_roc_ci"]) == 2
    back = json.loads(json.dumps(m))
    assert back["per_class"]["Happy"]["support"] == m["per_class"]["Happy"]["support"]
    assert set(back["per_class"]) == set(EXPRESSIONS)


def test_multitask_absent_tasks_and_length_check():
    rng = np.random.default_rng(10)
    v = rng.uniform(-1, 1, 20)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UndefinedMetricWarning)
        m = multitask_metrics(None, None, v, v * 0.5, None, None)
    assert m["n_expression"] == 0 and math.isnan(m["f1_macro"]) and math.isnan(m["arousal"]["ccc"])
    assert m["valence"]["ccc"] == pytest.approx(ccc(v, v * 0.5))
    json.dumps(m)
    with pytest.raises(ValueError, match="differ in length"):
        multitask_metrics([0, 1], np.zeros((2, 8)), v, v, None, None)
    with pytest.raises(ValueError, match="both"):
        multitask_metrics([0, 1], None, None, None, None, None)


def test_selection_score():
    full = {"f1_macro": 0.6, "valence": {"ccc": 0.5}, "arousal": {"ccc": 0.3}}
    assert selection_score(full) == pytest.approx(0.5 * 0.6 + 0.5 * 0.4)
    assert selection_score({"f1_macro": 0.6}) == pytest.approx(0.6)
    assert selection_score(
        {"f1_macro": 0.6, "valence": {"ccc": float("nan")}, "arousal": {"ccc": float("nan")}}
    ) == pytest.approx(0.6)
    assert selection_score(
        {"f1_macro": float("nan"), "valence": {"ccc": 0.5}, "arousal": {"ccc": 0.3}}
    ) == pytest.approx(0.4)
    assert selection_score({"valence": {"ccc": 0.5}}) == pytest.approx(0.5)
    with pytest.warns(UndefinedMetricWarning):
        assert math.isnan(selection_score({}))
    rng = np.random.default_rng(11)
    t = rng.integers(0, 8, 30)
    v = rng.uniform(-1, 1, 30)
    m = multitask_metrics(t, np.eye(8)[t], v, v, v, -v)
    assert selection_score(m) == pytest.approx(0.5 * 1.0 + 0.5 * (1.0 + ccc(v, -v)) / 2)
