"""ONNX export: numerics vs PyTorch, dynamic batch, stored metadata, torch-free ONNX prediction."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from affectkit.inference.export import export_onnx, read_onnx_metadata
from affectkit.inference.predictor import Predictor
from affectkit.inference.video import run_predict
from affectkit.labels import EXPRESSIONS

from test_inference import INPUT_SIZE, astronaut, make_ckpt, make_model

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("export")
    ckpt = make_ckpt(d / "m.ckpt", face_margin=0.3)
    return ckpt, export_onnx(ckpt, d / "model.onnx")


def test_onnx_matches_torch_fp32_with_dynamic_batch(exported):
    _, onnx_path = exported
    model = make_model()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == ["logits", "va", "probs"]
    assert sess.get_inputs()[0].shape[0] == "batch"
    rng = np.random.default_rng(1)
    for batch in (1, 5):
        x = rng.standard_normal((batch, 3, INPUT_SIZE, INPUT_SIZE)).astype(np.float32)
        logits, va, probs = sess.run(None, {"input": x})
        with torch.no_grad():
            t_logits, t_va = model(torch.from_numpy(x))
        assert logits.shape == (batch, 8) and va.shape == (batch, 2)
        assert np.abs(logits - t_logits.numpy()).max() <= 1e-4
        assert np.abs(va - t_va.numpy()).max() <= 1e-4
        assert np.abs(probs - torch.softmax(t_logits, 1).numpy()).max() <= 1e-5


def test_same_padding_exports_as_constant_pads_fused_into_the_convolutions(tmp_path):
    """EfficientNet-Lite's TF-"same" convolutions pad by the input's size at run time. The export (fixed size)
    makes those pads constants that ONNX Runtime folds into the Conv: no shape arithmetic and no Pad is left to
    run (each was a float island in the int8 model), the outputs equal PyTorch's, the model itself is unchanged."""
    import onnx
    from timm.layers import Conv2dSame

    from affectkit.inference.export import export_model
    from affectkit.models import create_model

    torch.manual_seed(0)
    model = create_model("efficientnet_lite0", weights="none").eval()
    same = sum(type(m) is Conv2dSame for m in model.modules())
    assert same >= 4  # the stem and the stride-2 depthwise convolutions
    path = export_model(model, tmp_path / "lite0.onnx", preprocess=None)
    assert sum(type(m) is Conv2dSame for m in model.modules()) == same
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert "Shape" not in ops and ops.count("Pad") == same
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    assert "Pad" not in [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]
    size = model.preprocess["input_size"]
    x = np.random.default_rng(0).standard_normal((2, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        t_logits, t_va = model(torch.from_numpy(x))
    logits, va, _ = sess.run(None, {"input": x})
    assert np.abs(logits - t_logits.numpy()).max() <= 1e-4 and np.abs(va - t_va.numpy()).max() <= 1e-4


def test_metadata_in_model_and_sidecar(exported):
    _, onnx_path = exported
    meta = read_onnx_metadata(onnx_path)
    model = make_model()
    assert meta["preprocess"]["mean"] == pytest.approx(list(model.preprocess["mean"]))
    assert meta["preprocess"]["std"] == pytest.approx(list(model.preprocess["std"]))
    assert meta["preprocess"]["input_size"] == INPUT_SIZE
    assert meta["backbone"] == "resnet18" and meta["expressions"] == list(EXPRESSIONS)
    assert meta["face_margin"] == 0.3
    sidecar = onnx_path.with_name("model.json")
    assert json.loads(sidecar.read_text()) == meta


def test_onnx_predictor_matches_torch_predictor(exported, tmp_path):
    ckpt, onnx_path = exported
    img = astronaut()[40:260, 140:320]
    p_onnx = Predictor.load(onnx_path)
    p_torch = Predictor.load(ckpt)
    assert p_onnx.backend_name == "onnx" and p_onnx.face_margin == 0.3 and p_onnx.input_size == INPUT_SIZE
    a, b = p_onnx.predict(img, detect=False)[0], p_torch.predict(img, detect=False)[0]
    assert a.probabilities == pytest.approx(b.probabilities, abs=1e-5)
    assert (a.valence, a.arousal) == pytest.approx((b.valence, b.arousal), abs=1e-4)
    # with detection too (MTCNN pulls in torch lazily)
    da, db = p_onnx.predict(astronaut()), p_torch.predict(astronaut())
    assert len(da) == len(db) == 1 and da[0].expression == db[0].expression
    rows = run_predict(onnx_path, [_save(tmp_path / "a.png", img)], detect=False)
    assert rows[0]["status"] == "ok" and rows[0]["expression"] == a.expression


def test_onnx_backend_imports_no_torch(exported, tmp_path):
    _, onnx_path = exported
    img = _save(tmp_path / "face.png", astronaut()[40:260, 140:320])
    code = (
        "import sys, json\n"
        "from affectkit import Predictor\n"
        f"p = Predictor.load({str(onnx_path)!r}, backend='onnx')\n"
        f"preds = p.predict({str(img)!r}, detect=False)\n"
        "from affectkit.inference.video import run_predict\n"
        f"rows = run_predict(p, [{str(img)!r}], detect=False)\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'n': len(preds), 'status': rows[0]['status']}))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out == {"torch": False, "n": 1, "status": "ok"}


def test_export_and_load_errors(tmp_path, exported):
    ckpt, onnx_path = exported
    with pytest.raises(ValueError, match=r"must end in .onnx"):
        export_onnx(ckpt, tmp_path / "model.pt")
    with pytest.raises(FileNotFoundError, match=r"missing.ckpt"):
        export_onnx(tmp_path / "missing.ckpt", tmp_path / "m.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf")
    with pytest.raises(ValueError, match=r"junk.onnx"):
        Predictor.load(junk)
    with pytest.raises(ValueError, match="backend 'onnx'"):
        Predictor.load(onnx_path, backend="torch")


def _save(path: Path, rgb: np.ndarray) -> Path:
    Image.fromarray(rgb).save(path)
    return path


def test_int8_check_compares_the_two_files_and_flags_a_changed_model(exported, tmp_path, monkeypatch):
    """check_int8 (run by `export --quantize int8`): a file identical to its float model keeps every expression
    and moves nothing; a file whose answers differ (here: a head that always says one class) is flagged, and the
    figures are stored in that file's metadata and sidecar."""
    from affectkit.inference import quantize
    from affectkit.inference.export import export_model
    from affectkit.training.checkpoint import load_model

    ckpt, fp32 = exported
    rng = np.random.default_rng(2)
    x = rng.standard_normal((64, 3, INPUT_SIZE, INPUT_SIZE)).astype(np.float32)
    labels = np.r_[np.full(32, -1), rng.integers(0, 8, 32)]
    same = quantize.compare_int8(fp32, fp32, x, labels)
    assert same["n"] == 64 and same["same_expression"] == 1.0 and same["max_prob_change"] == 0.0
    assert same["n_labelled"] == 32 and same["accuracy_fp32"] == same["accuracy_int8"]
    assert same["max_va_change"] == 0.0  # the test model's valence/arousal heads count as trained

    model, meta = load_model(ckpt)
    logits = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).run(["logits"], {"input": x})[0]
    rare = int(np.bincount(logits.argmax(1), minlength=8).argmin())  # the class the float model says least
    with torch.no_grad():
        model.head.classifier.weight.zero_()
        model.head.classifier.bias.fill_(0).data[rare] = 5.0
    changed = export_model(model, tmp_path / "changed.onnx", preprocess=meta["contract"], heads=meta["heads"])
    monkeypatch.setattr(quantize, "part_faces", lambda *a, **k: (x, labels))
    with pytest.warns(UserWarning, match="changes the predicted expression of .* of 64 held-out faces"):
        check = quantize.check_int8(ckpt, None, fp32, changed)
    assert check["split"] == "val" and check["same_expression"] <= 0.125
    assert read_onnx_metadata(changed)["int8_check"] == check
    assert json.loads(changed.with_suffix(".json").read_text())["int8_check"] == check
