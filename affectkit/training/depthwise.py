"""Depthwise convolutions kept in fp32 when training under bf16 autocast on a CPU.

PyTorch's CPU bf16 kernels for the *backward* pass of depthwise (grouped) convolutions are slow: on an
Intel Xeon with AMX, EfficientNet-Lite0 at 96 px trained at 50 images/s in bf16-mixed against 94 in fp32, nearly
all of the difference in the depthwise layers' ``convolution_backward`` (``bench/demo_speed.py --backbones
efficientnet_lite0 --size 96 --batch-sizes 64``). Those layers hold a small share of the FLOPs, so running just
them in fp32 (the dense and pointwise convolutions stay bf16) brings bf16-mixed level with fp32 (97 images/s).
Dense networks (VGG, ResNet) have no such layers and are unchanged; so are GPUs, inference and every model
without autocast.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["fp32_depthwise_on_cpu"]


class _Fp32OnCpuAutocast:
    """Mixin for a convolution class: under CPU autocast with gradients on, the convolution runs in fp32."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and torch.is_grad_enabled() and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return super().forward(x.float())  # type: ignore[misc]
        return super().forward(x)  # type: ignore[misc]


_SUBCLASSES: dict[type, type] = {}


def _fp32_class(cls: type) -> type:
    if cls not in _SUBCLASSES:
        _SUBCLASSES[cls] = type(cls.__name__, (_Fp32OnCpuAutocast, cls), {"__module__": cls.__module__})
    return _SUBCLASSES[cls]


def fp32_depthwise_on_cpu(model: nn.Module) -> int:
    """Makes every depthwise convolution of ``model`` run in fp32 under CPU bf16 autocast while training; returns
    how many were changed.

    The change is a subclass per convolution class (``Conv2d``, timm's ``Conv2dSame``, ...), swapped in place:
    parameters, state-dict keys, ``deepcopy`` and the fp32 forward stay as they were."""
    n = 0
    for module in model.modules():
        if (
            isinstance(module, nn.Conv2d)
            and not isinstance(module, _Fp32OnCpuAutocast)
            and module.groups > 1
            and module.groups == module.in_channels
        ):
            module.__class__ = _fp32_class(type(module))
            n += 1
    return n
