"""ExpW (Expression in-the-Wild): ``label/label.lst`` plus the photos in ``image/origin/``.

Each line of ``label.lst`` is one face: ``image_name face_id_in_image face_box_top face_box_left face_box_right
face_box_bottom face_box_cofidence expression_label``, labels 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad,
5 surprise, 6 neutral (mapped with ``labels.EXPW_TO_AFFECTNET``). The face is cropped by its box, so one photo
can give several samples; ``Sample.key`` is ``image/origin/<name>#<face_id>``. Source: the readme shipped with
the dataset (Zhang et al., "From Facial Expression Recognition to Interpersonal Relation Prediction", IJCV 2018);
public loaders read the same columns.

Groups: the photo. Faces of one photo (often the same people, always the same scene) stay in one split part.
There are no published splits. A malformed line, an unknown label or a box with no area is skipped with a
warning naming the line.
"""

from __future__ import annotations

from pathlib import Path

from affectkit.data.formats._common import DEFAULT_OPTIONS, Collector, ReadOptions, ReadRecords, image_names
from affectkit.labels import EXPW_TO_AFFECTNET

NAME = "expw"
LABEL_FILE = Path("label") / "label.lst"
IMAGE_DIR = Path("image") / "origin"
DESCRIPTION = "label/label.lst (name face_id top left right bottom confidence label) with image/origin/ (ExpW)"
N_FIELDS = 8


def looks_like(root: Path) -> bool:
    return (root / LABEL_FILE).is_file() and (root / IMAGE_DIR).is_dir()


def read(root: Path, options: ReadOptions = DEFAULT_OPTIONS) -> ReadRecords:
    """Read ExpW at ``root``; see the module docstring."""
    collector = Collector(NAME, root, options.strict, group_kind="photo")
    folder = root / IMAGE_DIR
    present = set(image_names(folder))
    label_file = root / LABEL_FILE
    prefix = IMAGE_DIR.as_posix()
    for line_number, line in enumerate((collector.read_text(label_file) or "").splitlines(), start=1):
        if not line.strip():
            continue
        collector.n_found += 1
        source = f"{label_file}:{line_number}"
        parts = line.split()
        if len(parts) != N_FIELDS:
            collector.problem(
                source,
                f"expected {N_FIELDS} fields (name face_id top left right bottom confidence label), got {len(parts)}",
                "bad annotation",
            )
            continue
        name, face_id = parts[0], parts[1]
        try:
            top, left, right, bottom = (round(float(v)) for v in parts[2:6])
        except ValueError:
            collector.problem(source, f"face box {' '.join(parts[2:6])!r} is not four numbers", "bad annotation")
            continue
        if right <= left or bottom <= top:
            collector.problem(
                source,
                f"face box (top {top}, left {left}, right {right}, bottom {bottom}) has no area",
                "bad annotation",
            )
            continue
        found, expression = collector.code(EXPW_TO_AFFECTNET, parts[7], source)
        if not found:
            continue
        if name not in present:
            collector.problem(folder / name, f"listed in {LABEL_FILE.as_posix()} but missing", "missing image")
            continue
        collector.add(
            str(folder / name),
            f"{prefix}/{name}#{face_id}",
            expression=expression,
            box=(left, top, right - left, bottom - top),
            group=name,
            parsed=True,
        )
    return collector.records()
