"""Image decoding: colour modes, EXIF rotation, cropping, the bad-file kinds, and scan_images."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from affectkit.data.images import ImageError, check_image, load_image, scan_images
from affectkit.data.records import Sample

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _halves(h: int = 10, w: int = 20) -> np.ndarray:
    """Left half red, right half blue."""
    a = np.zeros((h, w, 3), np.uint8)
    a[:, : w // 2] = RED
    a[:, w // 2 :] = BLUE
    return a


def _jpeg_bytes(array: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=95, **kw)
    return buf.getvalue()


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, Path]:
    """One file per bad kind, plus the kind load_image must report for it."""
    rng = np.random.default_rng(0)
    good = _jpeg_bytes(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    files = {
        "empty file": tmp_path / "zero.jpg",
        "truncated": tmp_path / "truncated.jpg",
        "not an image": tmp_path / "random.jpg",
        "text": tmp_path / "text.jpg",
        "missing file": tmp_path / "absent.jpg",
    }
    files["empty file"].write_bytes(b"")
    files["truncated"].write_bytes(good[: int(len(good) * 0.7)])
    files["not an image"].write_bytes(rng.integers(0, 256, 2000, dtype=np.uint8).tobytes())
    files["text"].write_text("this is not a picture\n" * 20)
    return files


@pytest.mark.parametrize(
    "mode, expected_pixel",
    [
        ("RGB", (10, 200, 30)),
        ("L", None),
        ("CMYK", None),
    ],
)
def test_basic_modes_decode_to_rgb_uint8(tmp_path: Path, mode: str, expected_pixel) -> None:
    rgb = np.full((12, 16, 3), (10, 200, 30), np.uint8)
    im = Image.fromarray(rgb).convert(mode)
    path = tmp_path / f"img_{mode}.{'jpg' if mode == 'CMYK' else 'png'}"
    im.save(path)
    out = load_image(path)
    assert out.shape == (12, 16, 3) and out.dtype == np.uint8
    if mode == "L":
        gray = np.asarray(im)[0, 0]
        assert (out[0, 0] == gray).all()
    elif mode == "CMYK":
        assert np.abs(out[6, 8].astype(int) - (10, 200, 30)).max() < 12
    else:
        assert tuple(out[0, 0]) == expected_pixel


def test_rgba_and_la_are_composited_on_black(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[:2, :, 3] = 255  # top opaque
    rgba[2:, :, 3] = 0  # bottom transparent: stored colour must not leak
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    out = load_image(tmp_path / "rgba.png")
    assert tuple(out[0, 0]) == (200, 100, 50)
    assert tuple(out[3, 3]) == (0, 0, 0)

    la = np.zeros((4, 4, 2), np.uint8)
    la[..., 0] = 200
    la[..., 1] = 128  # half transparent -> about half as bright
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    out = load_image(tmp_path / "la.png")
    assert out.shape == (4, 4, 3) and abs(int(out[0, 0, 0]) - 100) <= 1 and len(set(out[0, 0])) == 1


def test_palette_with_transparency(tmp_path: Path) -> None:
    im = Image.new("P", (6, 6), 0)
    im.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    im.paste(1, (0, 0, 3, 6))  # left half green, right half index 0 (red, declared transparent)
    im.info["transparency"] = 0
    im.save(tmp_path / "p.png", transparency=0)
    out = load_image(tmp_path / "p.png")
    assert tuple(out[0, 0]) == (0, 255, 0)
    assert tuple(out[0, 5]) == (0, 0, 0)

    im2 = Image.new("P", (6, 6), 0)
    im2.putpalette([255, 0, 0] + [0] * 765)
    im2.save(tmp_path / "p_opaque.png")
    assert tuple(load_image(tmp_path / "p_opaque.png")[2, 2]) == (255, 0, 0)


def test_16bit_gray_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 257 * 64, 65535, 257 * 200]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    out = load_image(tmp_path / "g16.png")
    assert out.shape == (1, 4, 3)
    assert list(out[0, :, 0]) == [0, 64, 255, 200]


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    stored = _halves(10, 20)  # 20 wide, 10 high, red left
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored rotated 90 degrees clockwise: the left (red) edge goes to the top
    (tmp_path / "rot.jpg").write_bytes(_jpeg_bytes(stored, exif=exif.tobytes()))
    out = load_image(tmp_path / "rot.jpg")
    assert out.shape == (20, 10, 3)
    assert out[2, 5, 0] > 200 and out[2, 5, 2] < 60  # top red
    assert out[17, 5, 2] > 200 and out[17, 5, 0] < 60  # bottom blue
    assert check_image(tmp_path / "rot.jpg") == (10, 20)  # (width, height) upright


def test_box_crop_is_clamped_and_array_input(tmp_path: Path) -> None:
    a = _halves(10, 20)
    crop = load_image(a, box=(8, -5, 4, 100))
    assert crop.shape == (10, 4, 3)
    assert tuple(crop[0, 0]) == RED and tuple(crop[0, 3]) == BLUE
    with pytest.raises(ImageError, match="outside"):
        load_image(a, box=(50, 50, 5, 5))
    gray = load_image(np.full((3, 5), 7, np.uint8))
    assert gray.shape == (3, 5, 3) and (gray == 7).all()


def test_target_size_draft_keeps_crop_consistent(tmp_path: Path) -> None:
    big = np.zeros((400, 600, 3), np.uint8)
    big[100:300, 200:400] = (255, 255, 255)  # white square exactly at the box
    (tmp_path / "big.jpg").write_bytes(_jpeg_bytes(big))
    full = load_image(tmp_path / "big.jpg", box=(200, 100, 200, 200))
    fast = load_image(tmp_path / "big.jpg", box=(200, 100, 200, 200), target_size=40)
    assert full.shape == (200, 200, 3)
    assert 40 <= fast.shape[0] < 200 and fast.shape[0] == fast.shape[1]
    assert fast[2:-2, 2:-2].mean() > 240  # still the white square, not shifted


@pytest.mark.parametrize("kind", ["empty file", "truncated", "not an image", "text", "missing file"])
def test_bad_files_raise_image_error_naming_file(bad_files: dict[str, Path], kind: str) -> None:
    path = bad_files[kind]
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)
    assert info.value.kind == ("not an image" if kind == "text" else kind)


def test_decompression_bomb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.fromarray(np.zeros((50, 50, 3), np.uint8)).save(tmp_path / "bomb.png")
    with pytest.raises(ImageError, match="decompression bomb") as info:
        load_image(tmp_path / "bomb.png", max_pixels=1000)
    assert info.value.kind == "decompression bomb"
    # Pillow's own limit (error above twice MAX_IMAGE_PIXELS) is turned into an ImageError, no warning leaks.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageError, match="decompression bomb"):
            load_image(tmp_path / "bomb.png")


def test_scan_images_skips_and_warns_once_per_bad_file(tmp_path: Path, bad_files: dict[str, Path]) -> None:
    Image.fromarray(_halves()).save(tmp_path / "good.png")
    samples = [Sample(image=str(tmp_path / "good.png"), expression=1, key="good.png")]
    samples += [Sample(image=str(p), expression=0, key=p.name) for p in bad_files.values()]
    samples.append(Sample(image=str(bad_files["truncated"]), expression=2, key="dup"))  # same file twice
    with pytest.warns(UserWarning) as record:
        ok, problems = scan_images(samples)
    assert [s.key for s in ok] == ["good.png"]
    assert len(problems) == len(bad_files)  # each bad file once
    assert len([w for w in record if "skipping bad image" in str(w.message)]) == len(bad_files)
    kinds = {reason.split(":")[0] for _, reason in problems}
    assert kinds == {"empty file", "truncated", "not an image", "missing file"}
    with pytest.raises(ImageError):
        scan_images(samples, strict=True)
