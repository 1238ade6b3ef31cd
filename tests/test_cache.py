"""The decoded-image store: `affectkit cache`, invalidation on source or size change, bad files, read-back."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from affectkit.cli import main
from affectkit.data import read_dataset
from affectkit.data.cache import build_store, decode_resized
from affectkit.data.dataset import AffectDataset


@pytest.fixture()
def faces(tmp_path) -> Path:
    from affectkit.data.synth import generate

    return generate(tmp_path / "faces", 12, seed=2, size=32, workers=1)


def _samples(root: Path):
    return sorted(read_dataset(root).samples, key=lambda s: s.key)


def test_cli_cache_then_reuse_and_read_back(faces, tmp_path, capsys):
    cdir = tmp_path / "cache"
    assert main(["cache", str(faces), "--size", "24", "--cache-dir", str(cdir)]) == 0
    assert "12/12 images cached at 24px" in capsys.readouterr().out
    samples = read_dataset(faces).samples
    store = build_store(samples, 24, cache_dir=cdir)
    stamp = (store.folder / "images.npy").stat().st_mtime_ns
    assert [p.name for p in cdir.iterdir()] == [store.folder.name]  # the CLI's store, reused, no temp folders
    assert store.images.shape == (12, 24, 24, 3) and store.images.dtype == np.uint8 and store.ok.all()
    for i, s in enumerate(samples):
        np.testing.assert_array_equal(store.images[i], decode_resized(s, 24))
    assert build_store(samples, 24, cache_dir=cdir).folder == store.folder
    assert (store.folder / "images.npy").stat().st_mtime_ns == stamp  # not rebuilt


def test_source_change_and_size_change_make_new_stores(faces, tmp_path):
    cdir = tmp_path / "cache"
    samples = _samples(faces)
    first = build_store(samples, 24, cache_dir=cdir)
    other_size = build_store(samples, 28, cache_dir=cdir)
    assert other_size.folder != first.folder and other_size.images.shape[1:] == (28, 28, 3)

    target = Path(samples[3].image)
    time.sleep(0.01)
    Image.new("RGB", (32, 32), (200, 10, 10)).save(target, quality=95)  # same path, new content
    changed = build_store(_samples(faces), 24, cache_dir=cdir)
    assert changed.folder != first.folder
    assert np.abs(changed.images[3].astype(int) - [200, 10, 10]).max() < 8  # the new pixels, not the stale ones
    np.testing.assert_array_equal(changed.images[2], first.images[2])
    # touching the file (same bytes, new mtime) is a change too: stat decides, not content
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert build_store(_samples(faces), 24, cache_dir=cdir).folder not in (first.folder, changed.folder)


def test_corrupt_image_is_marked_and_skipped(faces, tmp_path):
    cdir = tmp_path / "cache"
    samples = _samples(faces)
    bad = Path(samples[5].image)
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    with pytest.warns(UserWarning, match=bad.name):
        store = build_store(samples, 24, cache_dir=cdir)
    assert not store.ok[5] and store.ok.sum() == 11
    assert any(bad.name in msg for _, msg in store.problems)
    with pytest.warns(UserWarning, match=bad.name):  # a second run on the cached store names it again
        again = build_store(samples, 24, cache_dir=cdir)
    assert again.folder == store.folder and again.ok.sum() == 11
    ds = AffectDataset(samples, 24, store=store)
    assert len(ds) == 11 and 5 not in ds.valid
    batch = ds.__getitems__(list(range(len(ds))))
    assert 5 not in batch["index"].tolist() and batch["image"].shape == (11, 3, 24, 24)
    np.testing.assert_array_equal(batch["image"][5].permute(1, 2, 0).numpy(), decode_resized(samples[6], 24))
    with pytest.raises(ValueError, match=bad.name):
        build_store(samples, 20, cache_dir=cdir, strict=True)
    assert not any(p.name.startswith(".") for p in cdir.iterdir())  # the failed build left no temp folder


def test_concurrent_builders_share_one_complete_store(faces, tmp_path):
    cdir = tmp_path / "cache"
    samples = _samples(faces)
    with ThreadPoolExecutor(3) as ex:
        stores = list(ex.map(lambda _: build_store(samples, 24, cache_dir=cdir), range(3)))
    assert len({s.folder for s in stores}) == 1
    assert [p.name for p in cdir.iterdir()] == [stores[0].folder.name]
    for i, s in enumerate(samples):
        np.testing.assert_array_equal(stores[0].images[i], decode_resized(s, 24))


def test_device_decoder_agrees_with_cpu_decoder_and_falls_back(faces, tmp_path):
    """The nvJPEG store build, run here through torchvision's decoder on the CPU device: same pixels up to
    interpolation rounding; PNGs, EXIF-rotated and truncated JPEGs go through the CPU decoder."""
    from dataclasses import replace

    from affectkit.data.device_decode import device_decodable

    samples = _samples(faces)
    src = Path(samples[0].image)
    png = tmp_path / "face.png"
    Image.open(src).save(png)
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: nvJPEG would ignore this
    Image.open(samples[1].image).save(rotated, exif=exif)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(Path(samples[2].image).read_bytes()[:-300])
    mixed = [
        replace(samples[0], image=str(png)),
        replace(samples[1], image=str(rotated)),
        replace(samples[2], image=str(truncated)),
        replace(samples[3], box=(4, 2, 20, 24)),
        *samples[4:],
    ]
    assert [device_decodable(s) for s in mixed[:4]] == [False, False, True, True]

    with pytest.warns(UserWarning, match="truncated.jpg"):
        dev = build_store(mixed, 24, cache_dir=tmp_path / "dev", decode_device="cpu")
    with pytest.warns(UserWarning, match="truncated.jpg"):
        ref = build_store(mixed, 24, cache_dir=tmp_path / "ref", workers=1)
    assert dev.ok.tolist() == ref.ok.tolist() == [True, True, False] + [True] * 9
    np.testing.assert_array_equal(dev.images[:2], ref.images[:2])  # the fallbacks: the same CPU decoder
    diff = np.abs(dev.images[3:].astype(int) - ref.images[3:].astype(int))
    assert diff.mean() < 2.0 and np.percentile(diff, 99) <= 16, (diff.mean(), np.percentile(diff, 99))
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="needs a CUDA device"):
            build_store(mixed, 24, cache_dir=tmp_path / "x", decode_device="cuda")
    with pytest.raises(ValueError, match="decode_device must be"):
        build_store(mixed, 24, cache_dir=tmp_path / "x", decode_device="meta")
    assert not (tmp_path / "x").exists()  # refused before any work
