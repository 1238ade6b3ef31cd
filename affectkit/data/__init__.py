"""Datasets: readers for each layout, image decoding, splits and summaries.

Typical use::

    records = read_dataset("path/to/ferplus")  # format detected
    split = make_split(records, seed=0)  # or load_split("split.json")
    parts = apply_split(records, split)  # {"train": [Sample, ...], ...}
    print(format_summary(summarize(records)))
"""

from __future__ import annotations

from affectkit.data.formats import FORMATS, detect_format, read_dataset
from affectkit.data.images import ImageError, check_image, load_image, scan_images
from affectkit.data.records import Records, Sample
from affectkit.data.splits import Split, apply_split, load_split, make_split, save_split
from affectkit.data.summary import format_summary, summarize

__all__ = [
    "FORMATS",
    "ImageError",
    "Records",
    "Sample",
    "Split",
    "apply_split",
    "check_image",
    "detect_format",
    "format_summary",
    "load_image",
    "load_split",
    "make_split",
    "read_dataset",
    "save_split",
    "scan_images",
    "summarize",
]
