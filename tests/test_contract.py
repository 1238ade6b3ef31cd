"""What `evaluate` measures is what `predict`, `export` + ONNX, `serve` and `Predictor` deliver.

Run as a user runs it: the real `affectkit` command in subprocesses, in a temporary folder. A model trained at a
size other than 224 is evaluated on its test split; then every way of using it must give the same class for
every test image and probabilities within 1e-4 of evaluation's per-image predictions file.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from affectkit.labels import EXPRESSIONS

from clitools import FERPLUS_CONFIG, ak, link_ferplus, serve_cli, train_args

TOL = 1e-4
SIZE = 40  # not 224, not the images' own 48: the stored contract must carry it


def read_rows(path: Path, key: str = "source") -> dict[str, dict[str, str]]:
    with open(path, newline="") as f:
        return {r[key]: r for r in csv.DictReader(f)}


def probs_of(row: dict) -> np.ndarray:
    return np.array([float(row[f"prob_{n}"]) for n in EXPRESSIONS])


def assert_agree(reference: dict[str, dict], got: dict[str, np.ndarray], what: str) -> None:
    assert set(got) == set(reference), f"{what}: predicted other images than evaluation"
    worst = max(float(np.abs(probs_of(reference[k]) - got[k]).max()) for k in reference)
    same = sum(EXPRESSIONS[int(np.argmax(got[k]))] == reference[k]["expression"] for k in reference)
    assert same == len(reference), f"{what}: {same}/{len(reference)} images get evaluation's class"
    assert worst <= TOL, f"{what}: probabilities differ from evaluation's by up to {worst:.2e}"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """synth -> train at 40 px -> evaluate --split test, all through the CLI. Returns (folder, eval rows)."""
    d = tmp_path_factory.mktemp("contract")
    ak("synth", "--out", "faces", "-n", 160, "--size", 48, "--seed", 3, "--difficulty", 0.4, "--quiet", cwd=d)
    ak(*train_args(image_size=SIZE), cwd=d)
    out = ak("evaluate", "run", "--split", "test", cwd=d).stdout
    assert "valence" in out
    rows = read_rows(d / "run" / "eval" / "test_predictions.csv")
    assert len(rows) >= 25 and all(Path(k).is_file() for k in rows)
    return d, rows


def test_checkpoint_stores_the_training_contract(trained):
    from affectkit.training.checkpoint import load_model

    d, _ = trained
    _, meta = load_model(d / "run")
    assert meta["contract"].input_size == SIZE and meta["preprocess"]["input_size"] == SIZE
    assert meta["contract"].color == "rgb" and meta["heads"] == {"expression": True, "valence": True, "arousal": True}


def test_predict_no_detect_equals_evaluate(trained):
    d, ref = trained
    ak("predict", "run", *ref, "--no-detect", "--out", "p.csv", cwd=d)
    got = {k: probs_of(r) for k, r in read_rows(d / "p.csv").items()}
    assert_agree(ref, got, "predict --no-detect")
    pred = read_rows(d / "p.csv")
    for k, r in ref.items():  # valence/arousal agree too
        assert abs(float(pred[k]["valence"]) - float(r["valence"])) <= TOL
        assert abs(float(pred[k]["arousal"]) - float(r["arousal"])) <= TOL


def test_onnx_export_and_predict_equal_evaluate(trained):
    d, ref = trained
    ak("export", "run", "--format", "onnx", "--out", "model.onnx", cwd=d)
    meta = json.loads((d / "model.json").read_text())
    assert meta["preprocess"]["input_size"] == SIZE and meta["heads"]["valence"]
    ak("predict", "model.onnx", *ref, "--no-detect", "--backend", "onnx", "--out", "q.csv", cwd=d)
    got = {k: probs_of(r) for k, r in read_rows(d / "q.csv").items()}
    assert_agree(ref, got, "predict --backend onnx --no-detect")


def test_serve_from_the_command_line_equals_evaluate(trained):
    d, ref = trained
    with serve_cli("run", cwd=d) as (base, info):
        assert info["input_size"] == SIZE and info["heads"]["arousal"] and info["note"] is None
        got = {}
        for path in ref:
            boundary = uuid.uuid4().hex
            body = (
                (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="f.jpg"\r\n'
                    f"Content-Type: image/jpeg\r\n\r\n"
                ).encode()
                + Path(path).read_bytes()
                + f"\r\n--{boundary}--\r\n".encode()
            )
            req = urllib.request.Request(
                base + "/predict?detect=0",
                data=body,
                method="POST",
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            )
            faces = json.loads(urllib.request.urlopen(req, timeout=30).read())["faces"]
            assert len(faces) == 1
            got[path] = np.array([faces[0]["probabilities"][n] for n in EXPRESSIONS])
    assert_agree(ref, got, "affectkit serve POST /predict?detect=0")


def test_predictor_on_every_image_form_equals_evaluate(trained, tmp_path):
    from affectkit import Predictor

    d, ref = trained
    p = Predictor.load(d / "run")
    paths = list(ref)[:12]
    rgbs = [np.asarray(Image.open(k).convert("RGB")) for k in paths]
    forms = {
        "paths": (paths, "RGB"),
        "PIL images": ([Image.open(k) for k in paths], "RGB"),
        "RGB arrays": (rgbs, "RGB"),
        "BGR arrays": ([a[:, :, ::-1].copy() for a in rgbs], "BGR"),
        "float arrays in [0, 1]": ([a.astype(np.float32) / 255.0 for a in rgbs], "RGB"),
    }
    rgba = []  # opaque RGBA PNGs are the same picture
    for i, a in enumerate(rgbs):
        f = tmp_path / f"rgba{i}.png"
        Image.fromarray(np.dstack([a, np.full(a.shape[:2], 255, np.uint8)]), "RGBA").save(f)
        rgba.append(f)
    forms["RGBA PNGs"] = (rgba, "RGB")
    for what, (images, order) in forms.items():
        preds = p.predict_batch(images, detect=False, color=order)
        got = {k: np.array([f[0].probabilities[n] for n in EXPRESSIONS]) for k, f in zip(paths, preds, strict=True)}
        assert_agree({k: ref[k] for k in paths}, got, f"Predictor on {what}")


def test_transparent_pixels_are_black_in_training_and_inference(tmp_path):
    """A half-transparent RGBA face: the store (training) and Predictor see the same composited pixels."""
    from affectkit.data.cache import decode_resized
    from affectkit.data.records import Sample
    from affectkit.inference.faces import whole_image_face
    from affectkit.preprocess import Preprocess

    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (50, 60, 4), dtype=np.uint8)
    f = tmp_path / "face.png"
    Image.fromarray(rgba, "RGBA").save(f)
    pre = Preprocess(input_size=36)
    stored = decode_resized(Sample(key="face", image=str(f)), pre)
    from affectkit.inference.predictor import read_image

    for src in (f, Image.open(f), rgba, f.read_bytes()):
        rgb = read_image(src)
        np.testing.assert_array_equal(pre.finish(pre.crop_face(rgb, whole_image_face(rgb))), stored)
    composited = (rgba[:, :, :3].astype(np.uint16) * rgba[:, :, 3:] + 127) // 255
    np.testing.assert_array_equal(read_image(f), composited.astype(np.uint8))


def test_gray_contract_turns_colour_faces_gray():
    from affectkit.preprocess import Preprocess

    rgb = np.random.default_rng(1).integers(0, 256, (30, 30, 3), dtype=np.uint8)
    out = Preprocess(input_size=30, color="gray").to_array(rgb)
    assert (out[:, :, 0] == out[:, :, 1]).all() and (out[:, :, 1] == out[:, :, 2]).all()
    np.testing.assert_array_equal(out[:, :, 0], np.asarray(Image.fromarray(rgb).convert("L")))


def test_stored_contract_is_restored_not_defaulted():
    from affectkit.preprocess import Preprocess

    pre = Preprocess(input_size=96, color="gray", face_margin=0.05, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert Preprocess.from_dict(json.loads(json.dumps(pre.to_dict()))) == pre
    partial = pre.to_dict()
    del partial["color"]
    with pytest.raises(ValueError, match="color"):
        Preprocess.from_dict(partial)


def test_source_size_reduces_large_crops_first_and_old_contracts_still_load():
    from affectkit.preprocess import Preprocess

    rng = np.random.default_rng(0)
    big = rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)
    pre = Preprocess(input_size=96, color="gray", source_size=48)
    small = np.asarray(Image.fromarray(big).convert("L").resize((48, 48), Image.Resampling.BILINEAR))
    expect = np.asarray(Image.fromarray(small).resize((96, 96), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(pre.finish(big)[:, :, 0], expect)
    crop48 = rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)  # a dataset's own crops are untouched by it
    np.testing.assert_array_equal(pre.finish(crop48), Preprocess(input_size=96, color="gray").finish(crop48))
    assert pre.store_key() != Preprocess(input_size=96, color="gray").store_key()
    old = Preprocess(input_size=96).to_dict()
    del old["source_size"]
    old["version"] = 1  # written before source_size existed: means "no reduction"
    assert Preprocess.from_dict(old).source_size is None
    with pytest.raises(ValueError, match="source_size"):
        Preprocess(source_size=0)


@pytest.fixture(scope="module")
def expression_only(tmp_path_factory):
    """A model trained without valence/arousal (loss weights 0, as the FER+ recipe)."""
    d = tmp_path_factory.mktemp("noVA")
    ak("synth", "--out", "faces", "-n", 64, "--size", 32, "--seed", 5, "--quiet", cwd=d)
    ak(*train_args("faces", "--set", "loss_valence=0", "--set", "loss_arousal=0"), cwd=d)
    return d


def test_untrained_heads_report_nothing(expression_only):
    d = expression_only
    images = sorted((d / "faces" / "images").glob("*.jpg"))[:4]
    ak("predict", "run", *images, "--no-detect", "--out", "p.csv", cwd=d)
    rows = list(read_rows(d / "p.csv").values())
    assert rows and all(r["valence"] == "" and r["arousal"] == "" and r["expression"] for r in rows)
    ak("predict", "run", *images, "--no-detect", "--out", "p.json", cwd=d)
    js = json.loads((d / "p.json").read_text())
    assert all(r["valence"] is None and r["arousal"] is None for r in js)
    out = ak("evaluate", "run", cwd=d).stdout
    assert "without valence and arousal labels" in out
    m = json.loads((d / "run" / "eval" / "test_metrics.json").read_text())
    assert m["valence"] is None and m["arousal"] is None and m["heads"]["valence"] is False
    npz = np.load(d / "run" / "eval" / "test_predictions.npz")
    assert np.isnan(npz["valence_pred"]).all() and np.isnan(npz["arousal_pred"]).all()
    ak("report", "run", cwd=d)
    assert not (d / "run" / "report" / "circumplex.png").exists()


def test_ferplus_valid_agreement(ferplus_root, tmp_path):
    """48 px gray FER+ PNGs, a model trained for a few steps: evaluate == predict --no-detect."""
    root = link_ferplus(ferplus_root, tmp_path / "ferplus", {"FER2013Train": 96, "FER2013Valid": 48})
    ak(*train_args(root, "--set", "freeze_epochs=0", config=FERPLUS_CONFIG, image_size=48), cwd=tmp_path)
    ak("evaluate", "run", "--split", "val", cwd=tmp_path)
    ref = read_rows(tmp_path / "run" / "eval" / "val_predictions.csv")
    assert ref and all(r["valence"] == "" for r in ref.values())
    ak("predict", "run", *ref, "--no-detect", "--out", "p.csv", cwd=tmp_path)
    pred = read_rows(tmp_path / "p.csv")
    assert_agree(ref, {k: probs_of(r) for k, r in pred.items()}, "FER+ Valid predict --no-detect")
    assert all(r["valence"] == "" and r["arousal"] == "" for r in pred.values())
    shutil.rmtree(root)


def test_int8_export_predicts_like_the_float_model(trained):
    """`export --quantize int8` (calibrated on the run's training images) -> `predict --backend onnx`: the
    int8 model is a real quantized graph, smaller, with the same metadata, and close to evaluation's
    probabilities."""
    import onnx

    d, ref = trained
    ak("export", "run", "--out", "fp32.onnx", cwd=d)
    res = ak("export", "run", "--out", "int8.onnx", "--quantize", "int8", "--calibration-size", 64, cwd=d)
    assert res.stdout.strip() == "int8.onnx"  # stdout: the file alone; the comparison goes to stderr
    proto = onnx.load(str(d / "int8.onnx"))
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("QuantizeLinear") >= 10 and ops.count("DequantizeLinear") >= 10
    first_conv = next(n for n in proto.graph.node if n.op_type == "Conv")
    producers = {o: n.op_type for n in proto.graph.node for o in n.output}
    assert producers.get(first_conv.input[1]) != "DequantizeLinear", "the first convolution stays float"
    assert (d / "int8.onnx").stat().st_size < 0.5 * (d / "fp32.onnx").stat().st_size
    from affectkit.inference.export import read_onnx_metadata

    meta = read_onnx_metadata(d / "int8.onnx")
    assert meta["quantized"] == "int8" and meta["preprocess"]["input_size"] == SIZE
    check = meta["int8_check"]  # compared with the float model on the run's validation faces
    n_val = json.loads((d / "run" / "split.json").read_text())["sizes"]["val"]
    assert check["split"] == "val" and check["n"] == check["n_labelled"] == n_val
    assert 0.0 <= check["same_expression"] <= 1.0 and 0.0 <= check["max_prob_change"] <= 1.0
    assert f"int8 vs fp32 on {n_val} held-out (val) faces: same expression on" in res.stderr
    with serve_cli("int8.onnx", cwd=d) as (_, info):  # the web demo says it runs the int8 file, and how close
        assert info["quantized"] == "int8" and info["int8_check"] == check
    ak("predict", "int8.onnx", *ref, "--no-detect", "--backend", "onnx", "--out", "int8.csv", cwd=d)
    got = read_rows(d / "int8.csv")
    diffs = [abs(float(got[k][f"prob_{n}"]) - float(ref[k][f"prob_{n}"])) for k in ref for n in EXPRESSIONS]
    assert np.mean(diffs) <= 0.03, f"int8 probabilities differ from fp32 by {np.mean(diffs):.3f} on average"


def test_int8_export_refuses_bad_calibration(trained, tmp_path):
    d, _ = trained
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "affectkit.cli",
            "export",
            str(d / "run"),
            "--out",
            str(tmp_path / "q.onnx"),
            "--quantize",
            "int8",
            "--calibration-size",
            "0",
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2 and "calibration_size" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "q.onnx").exists()
