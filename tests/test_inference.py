"""Face detection/alignment, Predictor and run_predict (images, folders, GIF video, annotation)."""

from __future__ import annotations

import copy
import csv
import functools
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from affectkit.inference.faces import Face, FaceDetector, align_face, crop_square, eye_angle, whole_image_face
from affectkit.inference.predictor import FacePrediction, Predictor, UnreadableImageError, read_image
from affectkit.inference.video import ROW_FIELDS, InputWarning, expand_inputs, iter_frames, run_predict
from affectkit.labels import EXPRESSIONS

INPUT_SIZE = 64


# ---- shared fixtures (also imported by test_export.py and test_serve.py) --------------------------
@functools.cache
def _base_model(seed: int):
    from affectkit.models import create_model

    torch.manual_seed(seed)
    model = create_model("resnet18", weights="none")
    model.preprocess = {**model.preprocess, "input_size": INPUT_SIZE}
    return model.eval()


def make_model(seed: int = 0):
    """resnet18 with random weights at a 64 px input: small and fast, same interface as a trained one.

    A fresh copy of one cached model per seed (building a backbone costs seconds on a busy machine).
    """
    return copy.deepcopy(_base_model(seed))


def make_ckpt(path: Path, face_margin: float = 0.2) -> Path:
    from affectkit.training.checkpoint import save_model_checkpoint

    return save_model_checkpoint(make_model(), path, {"face_margin": face_margin})


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_ckpt(tmp_path_factory.mktemp("ckpt") / "m.ckpt")


def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()  # 512x512 RGB, one frontal face near (181, 62)-(268, 172)


def face_photo(size=(900, 640), at=(300, 120), scale: float = 0.6) -> np.ndarray:
    """A larger grey canvas with the astronaut's head pasted in (a 'full photo' with one face)."""
    head = Image.fromarray(astronaut()[20:260, 120:330])
    head = head.resize((int(head.width * scale), int(head.height * scale)), Image.BILINEAR)
    canvas = Image.new("RGB", size, (120, 124, 130))
    canvas.paste(head, at)
    return np.asarray(canvas)


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor.from_model(make_model(), face_margin=0.2)


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(min_confidence=0.9)


# ---- alignment ----------------------------------------------------------------------------------
def test_crop_square_adds_margin_on_each_side():
    cx, cy, side = crop_square(Face((10, 20, 50, 100)), margin=0.25)
    assert (cx, cy) == (30, 60)
    assert side == pytest.approx(80 * 1.5)


def test_align_face_margin_frames_the_box_in_the_middle():
    img = np.zeros((200, 200, 3), np.uint8)
    img[50:150, 50:150] = 255  # the "face" box is white, the rest black
    crop = align_face(img, Face((50, 50, 150, 150)), size=64, margin=0.5)  # side 200: box is the middle half
    assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8
    assert crop[20:44, 20:44].min() > 240
    assert crop[:12].max() < 10 and crop[:, -12:].max() < 10
    tight = align_face(img, Face((50, 50, 150, 150)), size=32, margin=0.0)
    assert tight.min() > 240


def test_align_face_pads_outside_the_image_with_black():
    img = np.full((100, 100, 3), 200, np.uint8)
    crop = align_face(img, Face((0, 0, 40, 40)), size=40, margin=0.5)  # square reaches to -20
    assert crop[:5, :5].max() == 0 and crop[30, 30].min() == 200


def test_alignment_levels_the_eye_line():
    img = np.zeros((300, 300, 3), np.uint8)
    angle = math.radians(30)
    c, r = np.array([150.0, 150.0]), 40.0
    d = r * np.array([math.cos(angle), math.sin(angle)])
    left, right = c - d, c + d
    for (x, y), colour in ((left, (255, 0, 0)), (right, (0, 255, 0))):
        img[int(y) - 4 : int(y) + 5, int(x) - 4 : int(x) + 5] = colour
    lms = np.array([left, right, c, c + np.array([-20, 40]), c + np.array([20, 40])])
    face = Face((100, 100, 200, 200), 1.0, lms)
    assert eye_angle(lms) == pytest.approx(30.0)
    crop = align_face(img, face, size=150, margin=0.0)
    ys_red = np.nonzero(crop[:, :, 0] > 128)[0]
    ys_green = np.nonzero(crop[:, :, 1] > 128)[0]
    xs_red = np.nonzero(crop[:, :, 0] > 128)[1]
    xs_green = np.nonzero(crop[:, :, 1] > 128)[1]
    assert abs(ys_red.mean() - ys_green.mean()) < 2.0  # level after rotation
    assert xs_green.mean() - xs_red.mean() == pytest.approx(80 * 1.5, abs=3)  # eye distance x 150/100
    unrotated = align_face(img, face, size=150, margin=0.0, rotate=False)
    assert abs(np.nonzero(unrotated[:, :, 0] > 128)[0].mean() - np.nonzero(unrotated[:, :, 1] > 128)[0].mean()) > 30


# ---- detection ----------------------------------------------------------------------------------
def test_detector_finds_the_astronaut(detector):
    faces = detector.detect(astronaut())
    assert len(faces) == 1
    f = faces[0]
    assert f.score > 0.99
    x1, y1, x2, y2 = f.box
    assert 160 < x1 < 200 and 40 < y1 < 90 and 250 < x2 < 290 and 150 < y2 < 195
    assert f.landmarks.shape == (5, 2)
    assert f.landmarks[0, 0] < f.landmarks[1, 0]  # left eye left of right eye
    assert all(x1 <= x <= x2 and y1 <= y <= y2 for x, y in f.landmarks)


def test_detector_several_faces_threshold_and_empty(detector):
    photo = face_photo((900, 500), at=(40, 60))
    photo2 = Image.fromarray(photo)
    photo2.paste(Image.fromarray(photo[60:260, 40:240]), (600, 200))
    assert len(detector.detect(np.asarray(photo2))) == 2
    assert detector.detect(np.full((300, 300, 3), 128, np.uint8)) == []
    assert FaceDetector(min_confidence=1.0).detect(astronaut()) == []
    with pytest.raises(ValueError, match="min_confidence"):
        FaceDetector(min_confidence=1.5)


def test_aligned_crop_of_a_tilted_face_is_upright(detector):
    tilted = np.asarray(Image.fromarray(astronaut()).rotate(-25, resample=Image.BILINEAR, center=(224, 117)))
    face = detector.detect(tilted)[0]
    assert abs(eye_angle(face.landmarks)) > 15
    crop = align_face(tilted, face, size=224, margin=0.4)
    again = detector.detect(crop)
    assert len(again) == 1 and abs(eye_angle(again[0].landmarks)) < 6


# ---- predictor ----------------------------------------------------------------------------------
def _reference(model, crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pre = model.preprocess
    x = torch.from_numpy(crop.copy()).float().permute(2, 0, 1)[None] / 255.0
    x = (x - torch.tensor(pre["mean"]).view(1, 3, 1, 1)) / torch.tensor(pre["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        logits, va = model(x)
    return torch.softmax(logits, 1)[0].numpy(), va[0].numpy()


def test_predict_without_detection_matches_a_direct_forward(predictor):
    img = astronaut()[50:250, 150:300]
    preds = predictor.predict(img, detect=False)
    assert len(preds) == 1
    p = preds[0]
    assert isinstance(p, FacePrediction)
    assert p.box == (0.0, 0.0, 150.0, 200.0) and p.score == 1.0
    # whole-image face with margin 0.2: a 200*1.4 square centred on the image, black outside, then 64 px
    crop = align_face(img, whole_image_face(img), INPUT_SIZE, 0.2)
    probs, va = _reference(predictor.backend.model, crop)
    got = np.array([p.probabilities[n] for n in EXPRESSIONS])
    assert np.abs(got - probs).max() < 1e-5
    assert (p.valence, p.arousal) == pytest.approx((float(va[0]), float(va[1])), abs=1e-5)
    assert sum(p.probabilities.values()) == pytest.approx(1.0)
    assert p.expression == EXPRESSIONS[p.expression_id] == max(p.probabilities, key=p.probabilities.get)
    assert -1 <= p.valence <= 1 and -1 <= p.arousal <= 1
    d = p.to_dict()
    assert json.loads(json.dumps(d))["expression"] == p.expression


def test_batch_equals_single_and_bgr_and_paths(predictor, tmp_path):
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 255, (80 + 10 * i, 90, 3), dtype=np.uint8) for i in range(5)]
    batch = Predictor.from_model(predictor.backend.model, batch_size=2).predict_batch(imgs, detect=False)
    single = [predictor.predict(im, detect=False)[0] for im in imgs]
    for b, s in zip(batch, single, strict=True):
        assert len(b) == 1
        assert max(abs(b[0].probabilities[n] - s.probabilities[n]) for n in EXPRESSIONS) < 1e-5
        assert b[0].valence == pytest.approx(s.valence, abs=1e-5)
    bgr = predictor.predict(np.ascontiguousarray(imgs[0][:, :, ::-1]), detect=False, color="BGR")[0]
    assert bgr.probabilities == pytest.approx(single[0].probabilities, abs=1e-6)
    path = tmp_path / "x.png"
    Image.fromarray(imgs[1]).save(path)
    from_path = predictor.predict(path, detect=False)[0]
    assert from_path.probabilities == pytest.approx(single[1].probabilities, abs=1e-6)
    assert predictor.predict(Image.fromarray(imgs[1]), detect=False)[0].valence == pytest.approx(single[1].valence)


def test_tta_averages_the_flip(predictor):
    img = astronaut()[60:200, 160:290]
    model = predictor.backend.model
    tta = Predictor.from_model(model, tta=True).predict(img, detect=False)[0]
    plain = predictor.predict(img, detect=False)[0]
    flipped = predictor.predict(np.ascontiguousarray(img[:, ::-1]), detect=False)[0]
    for n in EXPRESSIONS:
        assert tta.probabilities[n] == pytest.approx((plain.probabilities[n] + flipped.probabilities[n]) / 2, abs=1e-5)
    assert tta.arousal == pytest.approx((plain.arousal + flipped.arousal) / 2, abs=1e-5)


def test_bf16_and_channels_last_options_stay_close(predictor):
    img = astronaut()[60:200, 160:290]
    ref = predictor.predict(img, detect=False)[0]
    cl = Predictor.from_model(make_model(), channels_last=True).predict(img, detect=False)[0]
    assert cl.probabilities == pytest.approx(ref.probabilities, abs=1e-4)
    bf = Predictor.from_model(make_model(), precision="bf16").predict(img, detect=False)[0]
    assert bf.probabilities == pytest.approx(ref.probabilities, abs=0.05)
    assert bf.valence == pytest.approx(ref.valence, abs=0.05)
    with pytest.raises(ValueError, match="precision"):
        Predictor.from_model(make_model(), precision="fp8")


def test_predict_with_detection_and_no_face(predictor):
    photo = face_photo()
    preds = predictor.predict(photo)
    assert len(preds) == 1
    x1, y1, x2, _y2 = preds[0].box
    assert x1 >= 300 and x2 <= 300 + 126 + 5 and y1 >= 120  # inside the pasted head
    assert preds[0].landmarks is not None and len(preds[0].landmarks) == 5
    assert predictor.predict(np.zeros((120, 160, 3), np.uint8)) == []


def test_load_from_checkpoint_uses_its_margin(tmp_path):
    ckpt = make_ckpt(tmp_path / "m.ckpt", face_margin=0.35)
    p = Predictor.load(ckpt)
    assert p.backend_name == "torch" and p.face_margin == 0.35 and p.input_size == INPUT_SIZE
    assert p.backbone == "resnet18"
    img = astronaut()[60:200, 160:290]
    ref = Predictor.from_model(make_model(), face_margin=0.35).predict(img, detect=False)[0]
    assert p.predict(img, detect=False)[0].probabilities == pytest.approx(ref.probabilities, abs=1e-6)
    run = tmp_path / "run"
    make_ckpt(run / "checkpoints" / "best.ckpt", face_margin=0.35)
    assert Predictor.load(run).predict(img, detect=False)[0].probabilities == pytest.approx(ref.probabilities, abs=1e-6)
    with pytest.raises(FileNotFoundError, match=r"nope.ckpt"):
        Predictor.load(tmp_path / "nope.ckpt")
    with pytest.raises(ValueError, match="backend"):
        Predictor.load(ckpt, backend="tensorrt")


def test_unreadable_images_name_the_file(predictor, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(UnreadableImageError, match=r"broken.jpg"):
        predictor.predict(bad)
    with pytest.raises(UnreadableImageError, match=r"missing.png"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(UnreadableImageError, match="shape"):
        read_image(np.zeros((3, 4, 5, 6)))


def test_top_level_lazy_import():
    from affectkit import Predictor as P

    assert P is Predictor


# ---- run_predict --------------------------------------------------------------------------------
def _gif(path: Path, n: int = 6, duration_ms: int = 100) -> Path:
    frames = [Image.fromarray(face_photo((480, 360), at=(40 + 30 * i, 60))) for i in range(n)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)
    return path


def test_run_predict_images_folder_errors_csv_and_annotation(tmp_path, ckpt):
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    Image.fromarray(face_photo()).save(d / "face.jpg", quality=95)
    Image.fromarray(np.full((100, 140, 3), 90, np.uint8)).save(d / "sub" / "blank.png")
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (d / "notes.txt").write_text("ignored: not an image extension")
    out, ann = tmp_path / "out.csv", tmp_path / "ann"
    with pytest.warns(InputWarning) as record:
        rows = run_predict(ckpt, [d, tmp_path / "missing.jpg"], out=out, annotate=ann, batch_size=2)
    messages = " ".join(str(w.message) for w in record)
    assert "corrupt.png" in messages and "missing.jpg" in messages
    by_name = {Path(r["source"]).name: r for r in rows}
    assert set(by_name) == {"face.jpg", "blank.png", "corrupt.png", "missing.jpg"}
    face = by_name["face.jpg"]
    assert face["status"] == "ok" and face["expression"] in EXPRESSIONS and face["score"] > 0.9
    assert sum(face[f"prob_{n}"] for n in EXPRESSIONS) == pytest.approx(1.0, abs=1e-4)
    assert by_name["blank.png"]["status"] == "no_face" and by_name["blank.png"]["expression"] == ""
    assert by_name["corrupt.png"]["status"].startswith("error:")
    assert by_name["missing.jpg"]["status"] == "error: no such file or folder"
    with out.open() as f:
        table = list(csv.DictReader(f))
    assert list(table[0].keys()) == list(ROW_FIELDS) and len(table) == 4
    assert {r["status"] for r in table} >= {"ok", "no_face"}
    annotated = np.asarray(Image.open(ann / "face.jpg").convert("RGB")).astype(int)
    original = np.asarray(Image.open(d / "face.jpg").convert("RGB")).astype(int)
    assert annotated.shape == original.shape and np.abs(annotated - original).max() > 100  # box drawn
    assert (ann / "blank.png").exists()


def test_run_predict_gif_video_json_and_no_detect(tmp_path, predictor):
    gif = _gif(tmp_path / "clip.gif", n=6, duration_ms=100)
    assert [(i, t) for i, t, _ in iter_frames(gif, every_n=2)] == [(0, 0.0), (2, 0.2), (4, 0.4)]
    out, ann = tmp_path / "rows.json", tmp_path / "ann"
    rows = run_predict(predictor, [str(tmp_path / "*.gif")], out=out, annotate=ann, every_n=2, batch_size=2)
    assert [(r["frame"], r["time_s"]) for r in rows] == [(0, 0.0), (2, 0.2), (4, 0.4)]
    assert all(r["status"] == "ok" for r in rows)
    xs = [r["x1"] for r in rows]
    assert xs[0] < xs[1] < xs[2]  # the face moves right 60 px every 2 frames
    assert json.loads(out.read_text()) == rows
    if (ann / "clip_annotated.mp4").is_file():  # OpenCV present: annotated video as MP4
        import cv2

        cap = cv2.VideoCapture(str(ann / "clip_annotated.mp4"))
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
        cap.release()
    else:
        with Image.open(ann / "clip_annotated.gif") as im:
            assert im.n_frames == 3
    whole = run_predict(predictor, [gif], detect=False, every_n=3)
    assert [(r["frame"], r["x1"], r["x2"]) for r in whole] == [(0, 0.0, 480.0), (3, 0.0, 480.0)]


def test_run_predict_rejects_bad_arguments_early(tmp_path, predictor):
    with pytest.raises(ValueError, match=r"out.txt"):
        run_predict(predictor, [tmp_path], out=tmp_path / "out.txt")
    with pytest.raises(ValueError, match="every_n"):
        run_predict(predictor, [tmp_path], every_n=0)


def test_expand_inputs_orders_and_flags(tmp_path):
    for name in ("b.png", "a.jpg", "c.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    got = expand_inputs([tmp_path, str(tmp_path / "*.jpg"), str(tmp_path / "*.bmp"), tmp_path / "empty"])
    names = [(Path(p).name, problem) for p, problem in got]
    assert names[:2] == [("a.jpg", None), ("b.png", None)]
    assert names[2] == ("a.jpg", None)
    assert names[3][1] == "no file matches this pattern"
    assert names[4][1] == "folder holds no image or video files"


def test_video_without_reader_is_an_error_row(tmp_path, monkeypatch, predictor):
    import affectkit.inference.video_io as video_io

    monkeypatch.setattr(video_io, "video_reader_name", lambda: None)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00" * 64)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        rows = run_predict(predictor, [clip])
    assert len(rows) == 1 and rows[0]["status"].startswith("error: no video reader installed")
    assert any("clip.mp4" in str(x.message) for x in w)


class _FakeCv2:
    """Stands in for OpenCV (not installed here) to check frame sampling, timing, BGR order and the writer."""

    CAP_PROP_FPS = 5

    def __init__(self, frames_bgr: list[np.ndarray], fps: float):
        self.frames, self.fps, self.written = frames_bgr, fps, []
        fake = self

        class VideoCapture:
            def __init__(self, path):
                self.i = 0

            def isOpened(self):
                return True

            def get(self, prop):
                return fake.fps if prop == fake.CAP_PROP_FPS else 0

            def grab(self):
                self.i += 1
                return self.i <= len(fake.frames)

            def read(self):
                self.i += 1
                return (True, fake.frames[self.i - 1]) if self.i <= len(fake.frames) else (False, None)

            def release(self):
                pass

        class VideoWriter:
            def __init__(self, path, fourcc, fps, size):
                fake.writer_args = (Path(path).name, fps, size)

            def write(self, frame):
                fake.written.append(frame)

            def release(self):
                pass

        self.VideoCapture, self.VideoWriter = VideoCapture, VideoWriter
        self.VideoWriter_fourcc = lambda *a: 0


def test_video_through_opencv_path(tmp_path, monkeypatch, predictor):
    import sys

    import affectkit.inference.video_io as video_io

    rgb_frames = [face_photo((480, 360), at=(40 + 30 * i, 60)) for i in range(7)]
    fake = _FakeCv2([np.ascontiguousarray(f[:, :, ::-1]) for f in rgb_frames], fps=20.0)
    monkeypatch.setitem(sys.modules, "cv2", fake)
    monkeypatch.setattr(video_io, "video_reader_name", lambda: "cv2")
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00")
    got = list(iter_frames(clip, every_n=3))
    assert [(i, t) for i, t, _ in got] == [(0, 0.0), (3, 0.15), (6, 0.3)]
    assert np.array_equal(got[1][2], rgb_frames[3])  # back to RGB
    rows = run_predict(predictor, [clip], every_n=3, annotate=tmp_path / "ann")
    assert [r["frame"] for r in rows] == [0, 3, 6] and all(r["status"] == "ok" for r in rows)
    assert fake.writer_args == ("clip_annotated.mp4", pytest.approx(20.0 / 3), (480, 360))
    assert len(fake.written) == 3


def test_real_mp4_every_nth_frame_with_timestamps_and_annotated_video(tmp_path, predictor):
    """An actual MP4 through OpenCV: every Nth frame, timestamps from the frame rate, an annotated video out."""
    cv2 = pytest.importorskip("cv2")
    from affectkit.inference.video import run_predict

    path = tmp_path / "clip.mp4"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (96, 96))
    rng = np.random.default_rng(0)
    for _ in range(25):
        w.write(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8))
    w.release()
    rows = run_predict(predictor, [path], detect=False, every_n=10, annotate=tmp_path / "ann")
    assert [r["frame"] for r in rows] == [0, 10, 20]
    assert [r["time_s"] for r in rows] == pytest.approx([0.0, 1.0, 2.0])
    assert all(r["status"] == "ok" and r["expression"] for r in rows)
    assert any(p.suffix in (".mp4", ".gif") for p in (tmp_path / "ann").rglob("*"))
