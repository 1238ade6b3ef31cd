"""Batch augmentation on the device: flip, affine, colour jitter, random erasing.

Working on a whole float batch after transfer keeps loaders to a memcpy and costs a few vectorised ops, on CPU
and GPU alike, instead of a per-image PIL pipeline in worker processes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def augment_batch(
    x: torch.Tensor, flip: bool = True, affine: float = 0.0, color: float = 0.0, erasing: float = 0.0
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
