"""JPEG decoding on a torch device while building the decoded-image store (nvJPEG on CUDA, via torchvision).

On a GPU machine the one-off decode of a large dataset (AffectNet: ~290k JPEGs) is CPU-bound; nvJPEG decodes a
batch of files on the GPU, where crop and resize follow. Only plain upright JPEGs take this path: nvJPEG applies no
EXIF orientation, so rotated files, other formats, arrays and anything the device decoder rejects go through the
CPU decoder (``cache.decode_resized``), which also names the file when it is corrupt. Pixels differ from the CPU
path (``Preprocess.to_array``) by interpolation rounding only (antialiased bilinear on the device, Pillow bilinear
on the CPU); the colour mode is applied by the same ``Preprocess.finish``. It is a speed option for building a
training store: inference always uses the CPU contract.
"""

from __future__ import annotations

import warnings

import numpy as np

from affectkit.data.records import Sample

_EOI = b"\xff\xd9"
BATCH = 128  # files per nvJPEG call: amortises launch cost, bounds device memory for large photos


def check_device(device: str):
    """The torch device for ``device``; "cpu" runs this same path with torchvision's CPU decoder (tests use it:
    it is slower than the default Pillow workers)."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"decode_device {device!r} needs a CUDA device; none is available (use the default CPU "
            "decoder: leave decode_device unset)"
        )
    if dev.type not in ("cuda", "cpu"):
        raise ValueError(f"decode_device must be a CUDA device ('cuda', 'cuda:1') or 'cpu', got {device!r}")
    return dev


def device_decodable(sample: Sample) -> bool:
    """A plain JPEG file (RGB or gray) with no EXIF rotation: safe for the device decoder."""
    if isinstance(sample.image, np.ndarray):
        return False
    from PIL import Image

    from affectkit.data.images import _exif_orientation

    try:
        with Image.open(sample.image) as im:  # header only: no pixel decode
            return im.format == "JPEG" and im.mode in ("RGB", "L") and _exif_orientation(im) in (0, 1)
    except Exception:
        return False  # the CPU path reports the problem by name


def _decode_jpegs(datas, device):
    import torchvision.io as tio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision 0.29 marks its decoders deprecated in favour of TorchCodec
        try:
            return list(tio.decode_jpeg(datas, mode=tio.ImageReadMode.RGB, device=device))
        except RuntimeError:  # one bad file fails the whole batch: retry one by one
            out = []
            for d in datas:
                try:
                    out.append(tio.decode_jpeg(d, mode=tio.ImageReadMode.RGB, device=device))
                except RuntimeError:
                    out.append(None)
            return out


def _crop_resize(img, box, size: int) -> np.ndarray | None:
    """(3, H, W) uint8 on the device -> (size, size, 3) uint8 on the host; box as in ``images.load_image``."""
    import torch
    import torch.nn.functional as F

    from affectkit.data.images import box_bounds

    if box is not None:
        bounds = box_bounds(box, img.shape[2], img.shape[1])
        if bounds is None:
            return None  # the CPU path raises the named "box outside the image" error
        x0, y0, x1, y1 = bounds
        img = img[:, y0:y1, x0:x1]
    out = F.interpolate(img[None].float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out[0].round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def decode_resized_batch(samples: list[Sample], size: int, device) -> list[np.ndarray | None]:
    """Each sample decoded on ``device``, cropped to its box and resized to size x size RGB uint8; None where the
    device decoder could not (the caller falls back to the CPU decoder for those)."""
    import torchvision.io as tio

    datas = [tio.read_file(str(s.image)) for s in samples]
    # decoders may fill a truncated file with gray instead of failing: files without an end-of-image marker go
    # to the CPU path, which rejects them by name
    whole = [i for i, d in enumerate(datas) if _EOI in d[-1024:].numpy().tobytes()]
    out: list[np.ndarray | None] = [None] * len(samples)
    if whole:
        for i, img in zip(whole, _decode_jpegs([datas[i] for i in whole], device), strict=True):
            out[i] = None if img is None else _crop_resize(img, samples[i].box, size)
    return out


def fill_store_on_device(
    path: str, samples: list[Sample], preprocess, device: str, progress: bool = False
) -> list[tuple[int, str]]:
    """Write every sample into the store array at ``path`` (pixels per ``preprocess``, a Preprocess); returns
    (index, message) for unreadable images."""
    from affectkit.data.cache import _progress, decode_resized
    from affectkit.data.images import problem_text

    size = preprocess.input_size
    dev = check_device(device)
    arr = np.lib.format.open_memmap(path, mode="r+")
    bad: list[tuple[int, str]] = []
    starts = range(0, len(samples), BATCH)
    for start in _progress(starts, len(starts), progress, f"caching {len(samples)} images at {size}px on {dev}"):
        chunk = samples[start : start + BATCH]
        on_device = [i for i, s in enumerate(chunk) if device_decodable(s)]
        results: list[np.ndarray | None] = [None] * len(chunk)
        if on_device:
            for i, img in zip(on_device, decode_resized_batch([chunk[i] for i in on_device], size, dev), strict=True):
                results[i] = img
        for i, s in enumerate(chunk):
            try:
                arr[start + i] = (
                    preprocess.finish(results[i]) if results[i] is not None else decode_resized(s, preprocess)
                )
            except Exception as e:  # one bad file never stops the build: it is marked and reported
                bad.append((start + i, problem_text(s.image, e)))
    arr.flush()
    del arr
    return bad
