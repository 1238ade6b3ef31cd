"""Freezing the first k stages freezes exactly the parameters (and BatchNorm statistics) of a fixed layout.

The layouts below are spelled out by parameter-name prefix, independently of the matchers in
affectkit.models, so a change to a matcher (or to timm's group_matcher) that moves a layer between stages
fails here.
"""

from __future__ import annotations

import itertools
import pickle

import pytest
from torch.nn.modules.batchnorm import _BatchNorm

from affectkit.models import create_model, list_models


def _features(bounds):
    return [tuple(f"features.{i}." for i in range(a, b)) for a, b in itertools.pairwise(bounds)]


_RESNET = [("conv1.", "bn1."), ("layer1.",), ("layer2.",), ("layer3.",), ("layer4.",)]
_EFFICIENTNET_LITE = [("conv_stem.", "bn1."), *[(f"blocks.{i}.",) for i in range(7)], ("conv_head.", "bn2.")]
LAYOUTS = {
    "vgg16": _features((0, 5, 10, 17, 24, 31)),
    "vgg16_bn": _features((0, 7, 14, 24, 34, 44)),
    "resnet18": _RESNET,
    "resnet50": _RESNET,
    "mobilenet_v2": _features((0, 2, 4, 7, 14, 19)),
    "efficientnet_lite0": _EFFICIENTNET_LITE,
    "efficientnet_lite1": _EFFICIENTNET_LITE,
    "efficientnet_lite2": _EFFICIENTNET_LITE,
    "timm:resnet18": _RESNET,
    "timm:vit_tiny_patch16_224": [
        ("cls_token", "pos_embed", "patch_embed."),
        *[(f"blocks.{i}.",) for i in range(12)],
        ("norm.",),
    ],
}


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("AFFECTKIT_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


def test_every_registered_backbone_has_a_layout():
    assert set(list_models()) <= set(LAYOUTS)


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_freezing_k_stages_matches_the_layout(name):
    layout = LAYOUTS[name]
    model = create_model(name, weights="none")
    backbone = model.backbone
    params = dict(backbone.named_parameters())
    bns = {n for n, m in backbone.named_modules() if isinstance(m, _BatchNorm)}
    # The layout covers every parameter exactly once.
    owners = {n: [i for i, pre in enumerate(layout) if n.startswith(pre)] for n in params}
    assert all(len(o) == 1 for o in owners.values()), {n: o for n, o in owners.items() if len(o) != 1}
    assert len(model.stages()) == len(layout)
    for k in range(len(layout) + 1):
        model.freeze_backbone(k).train()
        frozen = {n for n, p in params.items() if not p.requires_grad}
        assert frozen == {n for n in params if owners[n][0] < k}, f"{name}: k={k}"
        eval_bn = {n for n in bns if not backbone.get_submodule(n).training}
        prefixes = _flat(layout[:k])
        assert eval_bn == {n for n in bns if any(f"{n}.".startswith(pre) for pre in prefixes)}, f"{name}: k={k}"
        assert all(p.requires_grad for p in model.head.parameters())


def _flat(stages):
    return tuple(pre for stage in stages for pre in stage)


def test_frozen_model_with_declared_stages_pickles():
    model = create_model("mobilenet_v2", weights="none").freeze_backbone(2)
    clone = pickle.loads(pickle.dumps(model))
    assert [p.requires_grad for p in clone.parameters()] == [p.requires_grad for p in model.parameters()]
    assert len(clone.stages()) == 5
