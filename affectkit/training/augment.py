"""Batch augmentation on the device: flip, affine, colour jitter, image quality, random erasing.

Working on a whole float batch after transfer keeps loaders to a memcpy and costs a few vectorised ops, on CPU
and GPU alike, instead of a per-image PIL pipeline in worker processes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def augment_batch(
    x: torch.Tensor,
    flip: bool = True,
    affine: float = 0.0,
    color: float = 0.0,
    erasing: float = 0.0,
    quality: float = 0.0,
) -> torch.Tensor:
    """Augment images ``x`` (B, 3, H, W) in [0, 1]; each image draws its own parameters."""
    b = x.shape[0]
    dev = x.device
    if flip:
        m = torch.rand(b, device=dev) < 0.5
        x = torch.where(m[:, None, None, None], x.flip(-1), x)
    if affine > 0:
        ang = (torch.rand(b, device=dev) * 2 - 1) * math.radians(15) * affine
        scale = 1 + (torch.rand(b, device=dev) * 2 - 1) * 0.10 * affine
        tx, ty = (torch.rand(2, b, device=dev) * 2 - 1) * 0.16 * affine  # grid units: 2 = full width
        cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if color > 0:

        def jitter():
            return (1 + (torch.rand(b, 1, 1, 1, device=dev) * 2 - 1) * color).to(x.dtype)

        x = x * jitter()
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * jitter() + mean
        gray = 0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
        x = (x - gray) * jitter() + gray
        x = x.clamp(0, 1)
    if quality > 0:
        x = degrade(x, quality)
    if erasing > 0:
        h, w = x.shape[-2:]
        apply = torch.rand(b, device=dev) < erasing
        area = torch.empty(b, device=dev).uniform_(0.02, 0.2)
        ratio = torch.exp(torch.empty(b, device=dev).uniform_(math.log(0.3), math.log(3.3)))
        eh = (torch.sqrt(area * ratio) * h).clamp(1, h)
        ew = (torch.sqrt(area / ratio) * w).clamp(1, w)
        y0 = torch.rand(b, device=dev) * (h - eh)
        x0 = torch.rand(b, device=dev) * (w - ew)
        ys = torch.arange(h, device=dev)[None, :, None]
        xs = torch.arange(w, device=dev)[None, None, :]
        box = (
            (ys >= y0[:, None, None])
            & (ys < (y0 + eh)[:, None, None])
            & (xs >= x0[:, None, None])
            & (xs < (x0 + ew)[:, None, None])
            & apply[:, None, None]
        )
        x = torch.where(box[:, None], torch.rand_like(x), x)
    return x


# (down-and-up scale factors), (blur sigmas in px), (JPEG qualities), (noise std on 0..1): each a few buckets so a
# batch costs a handful of vectorised calls
_SCALES = (0.35, 0.5, 0.7)
_SIGMAS = (0.6, 1.0, 1.5)
_QUALITIES = (25, 45, 70)
_NOISE = (0.01, 0.02, 0.04)


def degrade(x: torch.Tensor, p: float) -> torch.Tensor:
    """Each image, with probability ``p``, loses quality one way: lower resolution (down and up again), Gaussian
    blur, JPEG compression or sensor noise — the ways a face found in an ordinary photo or video frame differs from
    a clean dataset crop. ``x`` (B, 3, H, W) in [0, 1]."""
    from torchvision.io import decode_jpeg, encode_jpeg
    from torchvision.transforms.v2.functional import gaussian_blur

    b, _, h, w = x.shape
    chosen = torch.rand(b, device=x.device) < p
    kind = torch.randint(0, 4, (b,), device=x.device)
    level = torch.randint(0, 3, (b,), device=x.device)
    x = x.clone()
    for k in range(4):
        for lv in range(3):
            idx = torch.nonzero(chosen & (kind == k) & (level == lv)).flatten()
            if idx.numel() == 0:
                continue
            part = x[idx].float()  # antialiased resizing has no bf16 kernel
            if k == 0:
                small = (max(1, round(h * _SCALES[lv])), max(1, round(w * _SCALES[lv])))
                part = F.interpolate(part, size=small, mode="bilinear", antialias=True, align_corners=False)
                part = F.interpolate(part, size=(h, w), mode="bilinear", align_corners=False)
            elif k == 1:
                sigma = _SIGMAS[lv]
                part = gaussian_blur(part, kernel_size=2 * math.ceil(2 * sigma) + 1, sigma=sigma)
            elif k == 2:
                u8 = (part.float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
                coded = encode_jpeg(list(u8), quality=_QUALITIES[lv])
                part = torch.stack(decode_jpeg(coded)).to(x.device, x.dtype) / 255
            else:
                part = part + torch.randn_like(part) * _NOISE[lv]
            x[idx] = part.clamp(0, 1).to(x.dtype)
    return x
