"""Atomic writes: a failed write leaves the old file whole and no temporary file behind."""

from __future__ import annotations

import os

import pytest
import torch

from affectkit.io import atomic_torch_save, atomic_write, atomic_write_with, resolve_checkpoint


def test_text_bytes_and_torch_are_written_whole_with_normal_permissions(tmp_path):
    atomic_write(tmp_path / "sub" / "a.txt", "héllo\n")
    atomic_write(tmp_path / "b.bin", b"\x00\x01")
    atomic_torch_save({"w": torch.arange(3)}, tmp_path / "c.ckpt")
    assert (tmp_path / "sub" / "a.txt").read_text(encoding="utf-8") == "héllo\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert torch.load(tmp_path / "c.ckpt", weights_only=True)["w"].tolist() == [0, 1, 2]
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "b.bin").stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    atomic_write(target, "old")

    def half_then_fail(f):
        f.write(b"new but cut")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write_with(target, half_then_fail)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_resolve_checkpoint(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"looked for checkpoints/best.ckpt"):
        resolve_checkpoint(run)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert resolve_checkpoint(run) == run / "checkpoints" / "last.ckpt"
    (run / "checkpoints" / "best.ckpt").write_bytes(b"x")
    assert resolve_checkpoint(run) == run / "checkpoints" / "best.ckpt"
    assert resolve_checkpoint(run / "checkpoints" / "last.ckpt") == run / "checkpoints" / "last.ckpt"
    with pytest.raises(FileNotFoundError, match="no such file or run folder"):
        resolve_checkpoint(tmp_path / "nope.ckpt")


def test_predict_arguments_start_with_the_model_only_when_they_name_one(tmp_path):
    from affectkit.io import split_model_argument

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    photos = tmp_path / "photos"
    photos.mkdir()
    assert split_model_argument(None, ["a.jpg", "b.jpg"]) == (None, ["a.jpg", "b.jpg"])
    assert split_model_argument(None, [str(photos)]) == (None, [str(photos)])
    assert split_model_argument(None, [str(run), "a.jpg"]) == (str(run), ["a.jpg"])
    assert split_model_argument(None, ["m.onnx", "a.jpg"]) == ("m.onnx", ["a.jpg"])
    assert split_model_argument(None, ["ferplus", "a.jpg"]) == ("ferplus", ["a.jpg"])
    assert split_model_argument("m.ckpt", ["ferplus.jpg"]) == ("m.ckpt", ["ferplus.jpg"])
    with pytest.raises(ValueError, match="give the images"):
        split_model_argument(None, [str(run)])


def test_a_shipped_name_is_shadowed_only_by_a_file_or_a_run_folder(tmp_path, monkeypatch):
    from affectkit import pretrained

    monkeypatch.chdir(tmp_path)
    name = pretrained.DEFAULT
    (tmp_path / name / "eval").mkdir(parents=True)  # what `affectkit evaluate ferplus` leaves behind
    assert resolve_checkpoint(name) == pretrained.weights_path(name)
    (tmp_path / name / "checkpoints").mkdir()
    (tmp_path / name / "checkpoints" / "best.ckpt").write_bytes(b"x")
    assert resolve_checkpoint(name).resolve() == tmp_path / name / "checkpoints" / "best.ckpt"
