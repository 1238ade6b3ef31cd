"""CK+ (Extended Cohn-Kanade), as released or as the common CK+48 class-folder copy.

Release layout: ``cohn-kanade-images/S005/001/S005_001_00000011.png`` (each sequence runs from a neutral face to
the peak of one expression) and ``Emotion/S005/001/S005_001_00000011_emotion.txt`` for the sequences that carry
an emotion label (327 of 593), holding one number such as ``3.0000000e+00``: 0 neutral, 1 anger, 2 contempt,
3 disgust, 4 fear, 5 happy, 6 sadness, 7 surprise (mapped with ``labels.CKPLUS_TO_AFFECTNET``). The last
``peak_frames`` frames of a labelled sequence (default 3, the usual protocol) get its label and its first frame
is Neutral; unlabelled sequences are left out (counted). Source: Lucey et al., CVPR-W 2010, and the README of the
release; the code list is the one public loaders use.

CK+48 layout: ``anger/ contempt/ disgust/ fear/ happy/ sadness/ surprise/`` holding 48x48 crops named like the
release (``S010_004_00000017.png``, the last frames of labelled sequences; no neutral folder). Source: the copy
circulated on Kaggle; file names are assumed to keep the release's subject prefix.

Groups: the subject (``S005``), in both layouts; a CK+48 file without that prefix has no group (it is then its
own group in grouped splits). No published splits: subject-grouped splits are the standard protocol.
"""

from __future__ import annotations

import re
from pathlib import Path

from affectkit.data.formats._common import (
    DEFAULT_OPTIONS,
    Collector,
    ReadOptions,
    ReadRecords,
    image_names,
    scandir_names,
)
from affectkit.labels import CKPLUS_TO_AFFECTNET, expression_id

NAME = "ckplus"
DESCRIPTION = (
    "cohn-kanade-images/ and Emotion/ (CK+ release: S005/001/... with *_emotion.txt), or CK+48 class "
    "folders (anger/ contempt/ disgust/ fear/ happy/ sadness/ surprise/ with S010_004_*.png files)"
)
CK48_CLASSES = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
_SUBJECT = re.compile(r"^(S\d+)_\d+_\d+\.")


def _subdirs(folder: Path) -> list[str]:
    try:
        return sorted(n for n, is_dir in scandir_names(folder).items() if is_dir and not n.startswith((".", "_")))
    except OSError:
        return []


def _is_release(root: Path) -> bool:
    return (root / "cohn-kanade-images").is_dir() and (root / "Emotion").is_dir()


def _is_ck48(root: Path) -> bool:
    subdirs = _subdirs(root)
    if not subdirs or not {n.lower() for n in subdirs} <= set(CK48_CLASSES):
        return False
    return any(_SUBJECT.match(name) for folder in subdirs for name in image_names(root / folder)[:20])


def looks_like(root: Path) -> bool:
    return _is_release(root) or _is_ck48(root)


def read(root: Path, options: ReadOptions = DEFAULT_OPTIONS) -> ReadRecords:
    """Read CK+ at ``root`` (either layout); see the module docstring."""
    if options.peak_frames < 1:
        raise ValueError(f"invalid peak frame count {options.peak_frames} (peak_frames): use 1 or more")
    collector = Collector(NAME, root, options.strict, group_kind="subject")
    if _is_release(root):
        for subject in _subdirs(root / "cohn-kanade-images"):
            for sequence in _subdirs(root / "cohn-kanade-images" / subject):
                _read_sequence(collector, root, subject, sequence, options.peak_frames)
        _missing_sequences(collector, root)
    elif _is_ck48(root):
        for folder in _subdirs(root):
            expression = expression_id(folder)
            for name in image_names(root / folder):
                collector.n_found += 1
                m = _SUBJECT.match(name)
                collector.add(
                    str(root / folder / name),
                    f"{folder}/{name}",
                    expression=expression,
                    parsed=True,
                    group=m.group(1) if m else None,
                )
    else:
        raise ValueError(
            f"no CK+ layout ({root}): expected cohn-kanade-images/ and Emotion/, or CK+48 class "
            f"folders ({', '.join(CK48_CLASSES)})"
        )
    return collector.records()


def _read_sequence(collector: Collector, root: Path, subject: str, sequence: str, peak_frames: int) -> None:
    rel = f"{subject}/{sequence}"
    frames = image_names(root / "cohn-kanade-images" / rel)
    labels = sorted(n for n in _names(root / "Emotion" / rel) if n.endswith("_emotion.txt"))
    if not frames:
        return
    if not labels:
        collector.drop("ckplus sequence without emotion label")
        return
    label_file = root / "Emotion" / rel / labels[-1]
    text = collector.read_text(label_file)
    if text is None:
        return
    found, expression = collector.code(CKPLUS_TO_AFFECTNET, text.strip(), str(label_file), "emotion code")
    if not found:
        return
    # The first frame is the neutral onset; the last ones the peak (never the first one twice).
    peak = frames[-min(peak_frames, len(frames) - 1) :] if len(frames) > 1 else frames
    chosen = ([(frames[0], 0)] if len(frames) > 1 else []) + [(name, expression) for name in peak]
    for name, label in chosen:
        collector.n_found += 1
        collector.add(
            str(root / "cohn-kanade-images" / rel / name),
            f"cohn-kanade-images/{rel}/{name}",
            expression=label,
            group=subject,
            parsed=True,
        )


def _missing_sequences(collector: Collector, root: Path) -> None:
    """Emotion labels whose sequence has no frames: reported, since the label is lost."""
    for subject in _subdirs(root / "Emotion"):
        for sequence in _subdirs(root / "Emotion" / subject):
            rel = f"{subject}/{sequence}"
            if any(n.endswith("_emotion.txt") for n in _names(root / "Emotion" / rel)) and not image_names(
                root / "cohn-kanade-images" / rel
            ):
                collector.n_found += 1
                collector.problem(
                    root / "cohn-kanade-images" / rel, "has an emotion label but no frames", "missing image"
                )


def _names(folder: Path) -> list[str]:
    try:
        return list(scandir_names(folder))
    except OSError:
        return []
