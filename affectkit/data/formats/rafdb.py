"""RAF-DB, basic emotions part: ``EmoLabel/list_patition_label.txt`` plus ``Image/aligned/`` or ``Image/original/``.

Each line of the label file (its name is spelled "patition" in the release) is ``<image> <label>``, e.g.
``train_00001.jpg 5``, labels 1 Surprise, 2 Fear, 3 Disgust, 4 Happiness, 5 Sadness, 6 Anger, 7 Neutral
(mapped with ``labels.RAFDB_TO_AFFECTNET``). The split is the name's prefix: ``train_`` -> "train", ``test_`` ->
"test" (no "val": it is carved from train). Images are read from ``Image/aligned/<stem>_aligned.jpg`` (100x100
aligned faces) when that folder exists, else ``Image/original/<image>`` (whole photos, as the list names them).
Source: the RAF-DB site (whdeng.cn/raf/model1.html) and the README shipped with ``basic/``; public loaders use
the same file and codes. No groups: RAF-DB does not say who is in an image.
"""

from __future__ import annotations

from pathlib import Path

from affectkit.data.formats._common import DEFAULT_OPTIONS, Collector, ReadOptions, ReadRecords, image_names
from affectkit.labels import RAFDB_TO_AFFECTNET

NAME = "rafdb"
LABEL_FILE = Path("EmoLabel") / "list_patition_label.txt"
DESCRIPTION = "EmoLabel/list_patition_label.txt with Image/aligned/ or Image/original/ (RAF-DB basic)"
SPLIT_PREFIXES = {"train": "train", "test": "test"}


def looks_like(root: Path) -> bool:
    return (root / LABEL_FILE).is_file()


def read(root: Path, options: ReadOptions = DEFAULT_OPTIONS) -> ReadRecords:
    """Read RAF-DB basic at ``root``; see the module docstring."""
    collector = Collector(NAME, root, options.strict)
    aligned = (root / "Image" / "aligned").is_dir()
    folder = root / "Image" / ("aligned" if aligned else "original")
    present = set(image_names(folder))
    label_file = root / LABEL_FILE
    text = collector.read_text(label_file)
    for line_number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        collector.n_found += 1
        source = f"{label_file}:{line_number}"
        parts = line.split()
        if len(parts) != 2:
            collector.problem(source, f"expected '<image> <label>', got {line.strip()!r}", "bad annotation")
            continue
        name, raw = parts
        found, expression = collector.code(RAFDB_TO_AFFECTNET, raw, source)
        split = SPLIT_PREFIXES.get(name.split("_", 1)[0])
        if not found:
            continue
        if split is None:
            collector.problem(source, f"image name {name!r} starts with neither train_ nor test_", "bad annotation")
            continue
        stem = name.rsplit(".", 1)[0]
        file = f"{stem}_aligned.jpg" if aligned else name
        if file not in present:
            collector.problem(folder / file, f"listed in {LABEL_FILE.as_posix()} but missing", "missing image")
            continue
        collector.add(
            str(folder / file),
            f"{folder.relative_to(root).as_posix()}/{file}",
            expression=expression,
            split=split,
            parsed=True,
        )
    return collector.records()
