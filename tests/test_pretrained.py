"""The model that ships inside affectkit: its files, loading offline, stable predictions, and the out-of-box
commands (predict / serve / export / evaluate / models without a trained run)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from shipped_inputs import astronaut_face, ferplus_valid_faces

from affectkit import pretrained
from affectkit.inference.predictor import Predictor
from affectkit.labels import EXPRESSIONS

from clitools import AK, FERPLUS_CONFIG, ak, link_ferplus, serve_cli, train_args

ROOT = Path(__file__).parents[1]
EXPECTED = Path(__file__).parent / "data" / f"{pretrained.DEFAULT}_expected.json"


@pytest.fixture(scope="module")
def shipped() -> Predictor:
    return Predictor.load()


@pytest.fixture(scope="module")
def face_png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "face.png"
    Image.fromarray(astronaut_face()).save(path)
    return path


@pytest.fixture(scope="module")
def default_row(tmp_path_factory, face_png) -> dict:
    """``affectkit predict face.png --no-detect``: no model named, the shipped one answers."""
    d = tmp_path_factory.mktemp("predict")
    ak("predict", face_png, "--no-detect", "--out", "r.json", cwd=d)
    (row,) = json.loads((d / "r.json").read_text())
    return row


# ---- the files -----------------------------------------------------------------------------------------
def test_shipped_files_are_small_and_match_their_hash_and_card():
    models = pretrained.list_models()
    assert models and models[0].name == pretrained.DEFAULT
    for m in models:
        assert m.path.stat().st_size <= 10 * 2**20, "shipped weights must stay <= 10 MB"
        digest = pretrained.sha256(m.path)
        assert digest == m.sha256
        card = pretrained.card_text(m.name)
        assert digest in card and f"version {m.version}" in card
        assert "valence" in card and "decisions about people" in card
        for key in ("accuracy", "f1_macro"):
            assert f"{m.metrics[key]:.3f}" in card, f"index.json's {key} is the card's"


def test_a_damaged_file_is_refused_by_name(tmp_path):
    m = pretrained.get(pretrained.DEFAULT)
    shutil.copy(m.path, tmp_path / m.file)
    (tmp_path / "index.json").write_text(json.dumps({m.name: {**m.__dict__, "sha256": "0" * 64}}))
    with pytest.raises(ValueError, match="damaged"):
        pretrained.read_safetensors(tmp_path / m.file)


def test_unknown_name_lists_the_shipped_ones():
    with pytest.raises(ValueError, match=f"shipped: .*{pretrained.DEFAULT}"):
        pretrained.get("no-such-model")
    with pytest.raises(FileNotFoundError, match="affectkit models"):
        Predictor.load("no-such-model")


def test_safetensors_round_trip_keeps_the_model(tmp_path):
    import torch

    from affectkit.models import create_model
    from affectkit.training.checkpoint import load_model, model_meta, read_checkpoint

    torch.manual_seed(0)
    model = create_model("resnet18", weights="none").eval()
    ckpt = {
        "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        "affectkit": model_meta(model, {"image_size": 64, "color": "gray", "source_size": 48, "loss_valence": 0}),
    }
    path = pretrained.write_safetensors(ckpt, tmp_path / "m.safetensors", extra={"name": "m"})
    back = read_checkpoint(path)
    assert back["affectkit"]["name"] == "m"
    for k, v in ckpt["state_dict"].items():
        w = back["state_dict"][k]
        assert w.dtype == (torch.float32 if v.is_floating_point() else v.dtype)
        assert torch.equal(w, v.half().float() if v.is_floating_point() else v)
    restored, meta = load_model(path)
    assert meta["contract"].source_size == 48 and meta["contract"].color == "gray"
    assert meta["heads"]["valence"] is False
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(restored(x)[0], model(x)[0], atol=0.05)  # fp16 weights


# ---- the model -----------------------------------------------------------------------------------------
def test_loads_offline_and_predicts_expression_only(shipped):
    assert os.environ.get("AFFECTKIT_OFFLINE") == "1"
    assert shipped.model_name == pretrained.DEFAULT
    assert shipped.heads == {"expression": True, "valence": False, "arousal": False}
    info = shipped.info()
    assert info["model"] == pretrained.DEFAULT and "no valence" in info["note"]
    (face,) = shipped.predict(astronaut_face(), detect=False)
    assert face.valence is None and face.arousal is None
    assert abs(sum(face.probabilities.values()) - 1) < 1e-5


def test_predictions_on_a_photo_face_are_stable(shipped):
    want = json.loads(EXPECTED.read_text())["astronaut"]
    (face,) = shipped.predict(astronaut_face(), detect=False)
    got = face.probabilities
    assert max(abs(got[k] - want[k]) for k in want) < 2e-3, (got, want)


@pytest.mark.ferplus
def test_predictions_on_ferplus_valid_faces_are_stable(shipped, ferplus_root):
    want = json.loads(EXPECTED.read_text())
    faces = ferplus_valid_faces(ferplus_root)
    preds = shipped.predict_batch(list(faces.values()), detect=False)
    for key, (face,) in zip(faces, preds, strict=True):
        assert max(abs(face.probabilities[k] - v) for k, v in want[key].items()) < 2e-3, key


def test_onnx_backend_agrees_with_torch(shipped):
    onnx = Predictor.load(pretrained.DEFAULT, backend="onnx")
    assert onnx.backend_name == "onnx" and onnx.model_name == pretrained.DEFAULT
    crops = [astronaut_face(), np.ascontiguousarray(astronaut_face()[:, ::-1])]
    for a, b in zip(shipped.predict_batch(crops, detect=False), onnx.predict_batch(crops, detect=False), strict=True):
        assert a[0].expression == b[0].expression
        assert max(abs(a[0].probabilities[k] - b[0].probabilities[k]) for k in a[0].probabilities) < 1e-3


def test_large_faces_are_reduced_to_the_training_resolution(shipped):
    """FER+ faces are 48 px: a sharp 110 px face and the same face at 48 px reach the model as one input."""
    big = astronaut_face()
    small = np.asarray(Image.fromarray(big).convert("L").resize((48, 48), Image.Resampling.BILINEAR))
    assert shipped.contract.source_size == 48
    np.testing.assert_array_equal(shipped.contract.finish(big), shipped.contract.finish(np.dstack([small] * 3)))


# ---- the commands, as a user runs them -------------------------------------------------------------------
def test_models_lists_and_prints_the_card(tmp_path):
    out = ak("models", cwd=tmp_path).stdout
    assert f"{pretrained.DEFAULT} v" in out and "(default)" in out and "accuracy" in out
    card = ak("models", "--card", pretrained.DEFAULT, cwd=tmp_path).stdout
    assert card == pretrained.card_text(pretrained.DEFAULT)
    res = subprocess.run([*AK, "models", "--card", "nope"], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 2 and "no shipped model named 'nope'" in res.stderr and "Traceback" not in res.stderr


def test_predict_without_a_model_uses_the_shipped_one(tmp_path, face_png, shipped, default_row):
    row = default_row
    (face,) = shipped.predict(face_png, detect=False)
    assert row["expression"] == face.expression and row["valence"] is None
    # naming it first, or with --model, is the same
    ak("predict", "--model", pretrained.DEFAULT, face_png, "--no-detect", "--out", "m.json", cwd=tmp_path)
    ak("predict", pretrained.DEFAULT, face_png, "--no-detect", "--out", "n.json", cwd=tmp_path)
    assert json.loads((tmp_path / "m.json").read_text()) == json.loads((tmp_path / "n.json").read_text()) == [row]


def test_predict_fails_only_when_no_input_could_be_read(tmp_path, face_png):
    (tmp_path / "bad.jpg").write_text("not an image")
    args = [*AK, "predict", "missing.jpg", "bad.jpg", "--no-detect", "--out", "r.csv"]
    res = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "warning: missing.jpg: no such file or folder" in res.stderr
    assert res.stderr.strip().splitlines()[-1] == (
        "error: no input could be read (2 tried, see the warnings above); their error rows are in r.csv"
    )
    assert len((tmp_path / "r.csv").read_text().splitlines()) == 3  # header + the two error rows
    # one readable face among them: the run succeeds and reports the others
    res = ak("predict", "missing.jpg", face_png, "--no-detect", cwd=tmp_path)
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["status"] for r in rows] == ["error: no such file or folder", "ok"]


def test_export_the_shipped_model_and_predict_with_the_onnx(tmp_path, face_png, default_row):
    ak("export", pretrained.DEFAULT, "--out", "f.onnx", cwd=tmp_path)
    ak("predict", "f.onnx", face_png, "--no-detect", "--out", "o.json", cwd=tmp_path)
    (o,), t = json.loads((tmp_path / "o.json").read_text()), default_row
    assert o["expression"] == t["expression"]
    assert max(abs(o[f"prob_{k}"] - t[f"prob_{k}"]) for k in EXPRESSIONS) < 1e-3


def test_serve_without_a_model_shows_the_shipped_one(tmp_path, face_png):
    with serve_cli(None, tmp_path) as (base, info):
        assert info["model"] == pretrained.DEFAULT and info["heads"]["valence"] is False
        page = urllib.request.urlopen(base + "/static/app.js").read().decode()
        assert "info.model" in page and "info.summary" in page
        body = face_png.read_bytes()
        req = urllib.request.Request(base + "/predict?detect=0", data=body, headers={"Content-Type": "image/png"})
        res = json.loads(urllib.request.urlopen(req).read())
        assert res["faces"][0]["valence"] is None and res["faces"][0]["expression"]


@pytest.mark.ferplus
def test_evaluate_the_shipped_model_on_ferplus_faces(tmp_path, ferplus_root):
    """``affectkit evaluate ferplus --data D``: the full evaluation, without a run folder, agrees with predict."""
    root = link_ferplus(ferplus_root, tmp_path / "mini", {"FER2013Train": 8, "FER2013Valid": 64})
    ak("evaluate", pretrained.DEFAULT, "--data", root, "--split", "val", cwd=tmp_path)
    ev = tmp_path / pretrained.DEFAULT / "eval"  # beside the user, never inside the installed package
    m = json.loads((ev / "mini-val_metrics.json").read_text())
    assert m["valence"] is None and m["heads"]["valence"] is False and m["preprocess"]["source_size"] == 48
    npz = np.load(ev / "mini-val_predictions.npz")
    ak("predict", root / "FER2013Valid", "--no-detect", "--out", "p.json", cwd=tmp_path)
    by_file = {Path(r["source"]).name: r["expression"] for r in json.loads((tmp_path / "p.json").read_text())}
    pred = {Path(k).name: EXPRESSIONS[p] for k, p in zip(npz["keys"], npz["y_prob"].argmax(1), strict=True)}
    assert pred and all(by_file[k] == v for k, v in pred.items())


def test_the_wheel_carries_the_shipped_model(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    (wheel,) = tmp_path.glob("affectkit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    m = pretrained.get(pretrained.DEFAULT)
    for f in (m.file, f"{m.name}.md", "index.json", "card.md.j2"):
        assert f"affectkit/pretrained/{f}" in names


def test_ship_model_turns_a_run_into_a_shipped_model(tmp_path, ferplus_root):
    """``scripts/ship_model.py`` as CONTRIBUTING says, on a run trained for a few steps: the fp16 file, its card
    and index entry land in ``--dest``; the index holds the file's hash and the card's metrics, the card names the
    run's backbone and version, and the file predicts expression only."""
    root = link_ferplus(ferplus_root, tmp_path / "mini", {"FER2013Train": 64, "FER2013Valid": 32})
    # a teacher named by path: the card and the file name it by file name, never by this machine's path
    teacher = f"teacher=[{pretrained.DEFAULT},{pretrained.weights_path(pretrained.DEFAULT)}]"
    args = train_args(root, "--set", "freeze_epochs=0", "--set", teacher, config=FERPLUS_CONFIG, image_size=48)
    ak(*args, cwd=tmp_path)
    dest = tmp_path / "dest"
    cmd = [sys.executable, ROOT / "scripts" / "ship_model.py", "run", "--name", "mini", "--version", "3"]
    cmd += ["--data", root, "--command", "affectkit train (test)", "--dest", dest]
    res = subprocess.run(list(map(str, cmd)), cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    entry = json.loads((dest / "index.json").read_text())["mini"]
    weights = dest / entry["file"]
    assert entry["sha256"] == pretrained.sha256(weights) and entry["version"] == 3
    assert entry["summary"] == "resnet18 fine-tuned on FER+: 8 facial expressions, no valence/arousal"
    card = (dest / "mini.md").read_text()
    assert "version 3" in card and entry["sha256"] in card and "affectkit train (test)" in card
    assert f"{entry['metrics']['accuracy']:.3f}" in card and "decisions about people" in card
    shipped_file = pretrained.weights_path(pretrained.DEFAULT).name
    assert f"teacher: ['{pretrained.DEFAULT}', '{shipped_file}']" in card
    assert str(pretrained.weights_path(pretrained.DEFAULT).parent) not in card
    faces = Predictor.load(str(weights)).predict(np.zeros((48, 48, 3), np.uint8), detect=False)
    assert len(faces) == 1 and faces[0].valence is None and len(faces[0].probabilities) == 8
