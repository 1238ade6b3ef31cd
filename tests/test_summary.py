"""summarize / format_summary on a small manifest dataset with bad images, and on real FER+."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from affectkit.data import ImageError, format_summary, read_dataset, summarize
from affectkit.labels import EXPRESSIONS

KEYS = {
    "format",
    "root",
    "n_images",
    "n_usable",
    "per_class",
    "valence",
    "arousal",
    "excluded",
    "image_size",
    "groups",
    "splits",
    "problems",
}


@pytest.fixture
def manifest_root(tmp_path: Path) -> Path:
    rows = []
    for i in range(6):
        Image.fromarray(np.full((16, 24, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
        rows.append([f"{i}.png", i % 3, f"{-0.5 + 0.2 * i:.1f}", ""])
    (tmp_path / "bad.png").write_bytes(b"")  # zero-byte image
    (tmp_path / "junk.png").write_text("not an image")
    rows += [["bad.png", 1, "", ""], ["junk.png", 2, "", ""], ["none.png", 8, "-2", ""]]
    with open(tmp_path / "manifest.csv", "w", newline="") as f:
        csv.writer(f).writerows([["path", "expression", "valence", "arousal"], *rows])
    return tmp_path


def test_summary_counts_and_bad_images(manifest_root: Path) -> None:
    records = read_dataset(manifest_root)
    with pytest.warns(UserWarning, match="bad image"):
        summary = summarize(records)
    assert set(summary) == KEYS
    assert summary["format"] == "manifest" and summary["n_images"] == 9 and summary["n_usable"] == 6
    assert list(summary["per_class"]) == list(EXPRESSIONS)
    assert summary["per_class"]["Neutral"] == 2 and summary["per_class"]["Happy"] == 2
    assert summary["per_class"]["Contempt"] == 0
    assert summary["excluded"] == {
        "bad image: empty file": 1,
        "bad image: not an image": 1,
        "expression 8 (none)": 1,
        "valence -2 (invalid)": 1,
        "no usable label": 1,
    }
    va = summary["valence"]
    assert va["n"] == 6 and va["min"] == pytest.approx(-0.5) and va["max"] == pytest.approx(0.5)
    assert sum(va["histogram"]["counts"]) == 6 and len(va["histogram"]["edges"]) == 21
    assert summary["arousal"] is None and summary["splits"] is None
    assert summary["image_size"]["width"] == {"min": 24, "median": 24.0, "max": 24}
    json.dumps(summary)  # JSON-ready
    text = format_summary(summary)
    assert "Neutral" in text and "bad image: empty file" in text and "9 found, 6 usable" in text
    # every bad file is named with its reason, not only counted
    assert sorted(Path(f).name for f, _ in summary["problems"]) == ["bad.png", "junk.png"]
    assert "Bad files (2)" in text and any(
        line.strip().startswith(str(manifest_root / "junk.png")) for line in text.splitlines()
    )
    with pytest.raises(ImageError):
        summarize(records, strict=True)


def test_data_summary_command_names_each_bad_file(manifest_root: Path) -> None:
    from clitools import ak

    text = ak("data", "summary", manifest_root, cwd=manifest_root).stdout
    assert "Bad files (2)" in text and "junk.png: not an image" in text
    summary = json.loads(ak("data", "summary", manifest_root, "--json", cwd=manifest_root).stdout)
    assert sorted(Path(f).name for f, _ in summary["problems"]) == ["bad.png", "junk.png"]


def test_summary_without_scan_keeps_bad_files(manifest_root: Path) -> None:
    summary = summarize(read_dataset(manifest_root), scan=False)
    assert summary["n_usable"] == 8 and not any(k.startswith("bad image") for k in summary["excluded"])


@pytest.mark.ferplus
def test_summary_ferplus(ferplus_root: Path) -> None:
    summary = summarize(read_dataset(ferplus_root), scan=False)
    assert summary["n_images"] == 28558 + 3579
    assert set(summary["splits"]) == {"train", "val"} and sum(summary["splits"].values()) == summary["n_usable"]
    assert summary["image_size"]["height"]["median"] == 48
    assert summary["per_class"]["Neutral"] > summary["per_class"]["Contempt"] > 0


def test_summary_counts_groups_and_missing_labels(tmp_path: Path) -> None:
    """JAFFE: groups are posers; an expression-only set reports no valence/arousal (missing, not zero)."""
    for name in ("KA.AN1.39.tiff", "KA.NE1.26.tiff", "KA.HA1.29.tiff", "KL.HA2.30.tiff"):
        Image.fromarray(np.full((20, 20), 90, np.uint8)).save(tmp_path / name)
    summary = summarize(read_dataset(tmp_path))
    assert summary["format"] == "jaffe" and summary["groups"] == {"kind": "poser", "n": 2, "largest": 3}
    assert summary["valence"] is None and summary["arousal"] is None and summary["per_class"]["Happy"] == 2
    assert "Groups   2 posers (up to 3 images each" in format_summary(summary)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "0.png")
    with open(tmp_path / "manifest.csv", "w", newline="") as f:
        csv.writer(f).writerows([["path", "expression"], ["0.png", "1"]])
    assert summarize(read_dataset(tmp_path / "manifest.csv"))["groups"] is None
