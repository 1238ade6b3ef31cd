"""JAFFE (Japanese Female Facial Expression): one folder of images whose names carry the labels.

A name is ``<poser>.<expression><n>.<number>.tiff``, e.g. ``KA.AN1.39.tiff``: poser KA (10 posers), expression
code NE neutral, HA happy, SA sad, SU surprise, AN angry, DI disgust, FE fear (mapped with
``labels.JAFFE_TO_AFFECTNET``), ``n`` the take and ``number`` the image id. 213 images, 256x256 gray. Source:
Lyons et al., FG 1998, and the README of the release (zenodo.org/record/3451524); copies converted to PNG/JPEG
keep the names and are read too. The semantic ratings shipped beside the images are not used.

Groups: the poser, so no woman is in two split parts. No published splits. An image whose name does not follow
the pattern, or whose expression code is unknown, is skipped with a warning.
"""

from __future__ import annotations

import re
from pathlib import Path

from affectkit.data.formats._common import DEFAULT_OPTIONS, Collector, ReadOptions, ReadRecords, image_names
from affectkit.labels import JAFFE_TO_AFFECTNET

NAME = "jaffe"
DESCRIPTION = "one folder of images named <poser>.<code><n>.<id>.tiff, e.g. KA.AN1.39.tiff (JAFFE)"
_NAME = re.compile(r"^([A-Za-z]{2})\.([A-Za-z]{2})(\d*)\.(\d+)\.[A-Za-z]+$")


def looks_like(root: Path) -> bool:
    """True if most images in the folder (at least one) are named like JAFFE's."""
    names = image_names(root)
    matches = sum(1 for n in names if (m := _NAME.match(n)) and m.group(2).upper() in JAFFE_TO_AFFECTNET)
    return matches > 0 and matches * 2 >= len(names)


def read(root: Path, options: ReadOptions = DEFAULT_OPTIONS) -> ReadRecords:
    """Read the JAFFE folder ``root``; see the module docstring."""
    collector = Collector(NAME, root, options.strict, group_kind="poser")
    for name in image_names(root):
        collector.n_found += 1
        match = _NAME.match(name)
        if match is None:
            collector.problem(
                root / name, "name is not <poser>.<code><n>.<id>.<ext> (e.g. KA.AN1.39.tiff)", "bad annotation"
            )
            continue
        poser, code = match.group(1).upper(), match.group(2).upper()
        found, expression = collector.code(JAFFE_TO_AFFECTNET, code, str(root / name), "expression code")
        if found:
            collector.add(str(root / name), name, expression=expression, group=poser, parsed=True)
    return collector.records()
