"""Optional dependencies: without an extra, the command that needs it says in one line which extra to install;
the rest keeps working (predict on images without OpenCV, PGM/PPM images like the dataset readers take)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from test_inference import face_photo, make_ckpt

# The real CLI, in a process where the named modules cannot be imported (as if their extra were not installed).
WITHOUT = (
    "import sys; sys.modules.update(dict.fromkeys(sys.argv[1].split(','))); "
    "from affectkit.cli import main; raise SystemExit(main(sys.argv[2:]))"
)


def ak_without(modules: str, *args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT, modules, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_ckpt(tmp_path_factory.mktemp("extras") / "m.ckpt")


@pytest.mark.parametrize(
    ("blocked", "verb", "says"),
    [
        ("fastapi", ["serve"], "affectkit serve needs fastapi (not installed): pip install affectkit[serve]"),
        ("onnx", ["export", "--out", "m.onnx"], "ONNX export needs onnx (not installed): pip install affectkit[onnx]"),
        (
            "facenet_pytorch",
            ["predict", "face.png"],
            "face detection (MTCNN) needs facenet-pytorch (not installed): "
            "pip install affectkit[faces] && pip install --no-deps facenet-pytorch==2.5.3; "
            "or use detect=False / --no-detect",
        ),
    ],
)
def test_missing_extra_is_one_line_naming_it(tmp_path, ckpt, blocked, verb, says):
    Image.fromarray(face_photo()).save(tmp_path / "face.png")
    args = [verb[0], ckpt, *verb[1:]]
    r = ak_without(blocked, *args, cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.strip().splitlines() == [f"error: {says}"]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "m.onnx").exists()


def test_predict_without_opencv_reads_images_incl_pgm_and_names_the_extra_for_videos(tmp_path, ckpt):
    d = tmp_path / "in"
    d.mkdir()
    face = Image.fromarray(face_photo((320, 240), at=(60, 20), scale=0.5))
    face.convert("L").save(d / "gray.pgm")
    face.save(d / "colour.ppm")
    (d / "clip.mp4").write_bytes(b"\x00" * 64)  # never opened: no reader
    r = ak_without("cv2,imageio", "predict", ckpt, d, "--no-detect", "--out", "rows.csv", cwd=tmp_path)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    with (tmp_path / "rows.csv").open() as f:
        rows = {Path(row["source"]).name: row for row in csv.DictReader(f)}
    assert set(rows) == {"gray.pgm", "colour.ppm", "clip.mp4"}
    for name in ("gray.pgm", "colour.ppm"):
        assert rows[name]["status"] == "ok" and float(rows[name]["score"]) == 1.0, rows[name]
        assert np.isfinite(float(rows[name]["valence"]))
    assert rows["clip.mp4"]["status"].startswith("error: no video reader installed")
    assert "clip.mp4" in r.stderr


def test_extras_are_declared_in_pyproject():
    import tomllib

    from affectkit.extras import EXTRAS

    meta = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    declared = {k: {d.split(">")[0].split("=")[0] for d in v} for k, v in meta["optional-dependencies"].items()}
    for extra, dists in EXTRAS.items():
        # facenet-pytorch is installed with --no-deps beside the extra (it would replace torch otherwise)
        assert set(dists) - {"facenet-pytorch"} <= declared[extra], extra
    core = " ".join(meta["dependencies"])
    assert not any(d in core for dists in EXTRAS.values() for d in dists)
