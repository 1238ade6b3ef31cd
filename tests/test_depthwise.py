"""Depthwise convolutions in fp32 under CPU bf16 autocast while training (affectkit/training/depthwise.py)."""

import copy

import pytest
import torch
from timm.layers import Conv2dSame

from affectkit.models import create_model
from affectkit.training.depthwise import _Fp32OnCpuAutocast, fp32_depthwise_on_cpu
from affectkit.training.module import AffectModule


def _depthwise(model):
    return [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups == m.in_channels > 1]


def test_swaps_only_depthwise_and_keeps_weights_and_fp32_outputs():
    torch.manual_seed(0)
    plain = create_model("efficientnet_lite0", weights="none").eval()
    changed = copy.deepcopy(plain)
    n = fp32_depthwise_on_cpu(changed)
    assert n == len(_depthwise(plain)) > 0
    assert fp32_depthwise_on_cpu(changed) == 0  # already done: nothing to do twice
    assert list(changed.state_dict()) == list(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(changed(x), plain(x), strict=True))
    # dense networks have no depthwise convolution
    assert fp32_depthwise_on_cpu(create_model("resnet18", weights="none")) == 0


def test_fp32_only_when_training_under_cpu_autocast():
    conv = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
    fp32_depthwise_on_cpu(conv)
    x = torch.randn(2, 8, 6, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert conv(x).dtype == torch.float32  # training step: the slow bf16 backward avoided
        with torch.no_grad():
            assert conv(x).dtype == torch.bfloat16  # inference keeps bf16 (its forward is fast)
    assert conv(x).dtype == torch.float32
    y = conv(x.requires_grad_())
    y.sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.dtype == torch.float32


def test_subclass_keeps_the_original_forward_and_survives_deepcopy():
    conv = Conv2dSame(4, 4, 3, stride=2, groups=4)  # timm's "same" padding lives in its own forward
    ref = copy.deepcopy(conv)
    fp32_depthwise_on_cpu(conv)
    assert isinstance(conv, Conv2dSame)
    x = torch.randn(1, 4, 7, 7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(x)
    torch.testing.assert_close(out, ref(x))
    twin = copy.deepcopy(conv)
    assert type(twin) is type(conv)
    with torch.no_grad():
        twin.weight.mul_(2)
    assert not torch.equal(twin(x), conv(x))  # the copy runs its own weights


@pytest.mark.parametrize("backbone, depthwise", [("efficientnet_lite0", True), ("vgg16_bn", False)])
def test_training_module_applies_it(backbone, depthwise):
    model = AffectModule({"backbone": backbone, "weights": "none", "image_size": 48}).model
    convs = _depthwise(model)
    assert bool(convs) == depthwise
    assert all(isinstance(m, _Fp32OnCpuAutocast) for m in convs)
