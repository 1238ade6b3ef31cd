"""Backbone registry, multi-task head, freezing and forward shapes (random init, small inputs)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from affectkit.models import AffectModel, MultiTaskHead, create_model, get_spec, list_models, register_model

EXPECTED_FEATURES = {
    "vgg16": 512,
    "vgg16_bn": 512,
    "resnet18": 512,
    "resnet50": 2048,
    "mobilenet_v2": 1280,
    "efficientnet_lite0": 1280,
}
EXPECTED_STAGES = {"vgg16": 5, "vgg16_bn": 5, "resnet18": 5, "resnet50": 5, "mobilenet_v2": 5, "efficientnet_lite0": 9}


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("AFFECTKIT_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


def test_list_models_has_the_documented_backbones():
    names = list_models()
    assert set(EXPECTED_FEATURES) <= set(names)
    assert names == sorted(names)


@pytest.mark.parametrize("name", sorted(EXPECTED_FEATURES))
def test_forward_shapes_and_stages(name):
    torch.manual_seed(0)
    model = create_model(name, weights="none", num_classes=8).eval()
    assert model.num_features == EXPECTED_FEATURES[name]
    assert model.backbone_name == name
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        feats = model.backbone(x)
        logits, va = model(x)
    assert feats.shape == (2, model.num_features)
    assert logits.shape == (2, 8) and va.shape == (2, 2)
    assert torch.isfinite(logits).all() and (va.abs() <= 1).all()
    stages = model.stages()
    assert len(stages) == EXPECTED_STAGES[name]
    # The stages cover every backbone parameter exactly once, so freezing all of them freezes the backbone.
    stage_ids = [id(p) for s in stages for p in s.parameters()]
    assert len(stage_ids) == len(set(stage_ids))
    assert set(stage_ids) == {id(p) for p in model.backbone.parameters()}


def test_preprocess_matches_backbone_normalisation():
    r = create_model("resnet18", weights="none").preprocess
    assert r["mean"] == pytest.approx((0.485, 0.456, 0.406)) and r["std"] == pytest.approx((0.229, 0.224, 0.225))
    assert r["input_size"] == 224 and r["interpolation"] == "bilinear"
    e = create_model("efficientnet_lite0", weights="none").preprocess
    assert e["mean"] == (0.5, 0.5, 0.5) and e["std"] == (0.5, 0.5, 0.5)
    assert e["input_size"] == 224
    assert get_spec("efficientnet_lite2").preprocess["input_size"] == 260


def test_num_classes_and_hidden_head():
    model = create_model("resnet18", weights="none", num_classes=7, hidden=64).eval()
    logits, va = model(torch.randn(3, 3, 32, 32))
    assert logits.shape == (3, 7) and va.shape == (3, 2)
    assert model.head.classifier.in_features == 64


def test_va_is_bounded_and_starts_unsaturated():
    torch.manual_seed(0)
    head = MultiTaskHead(1280)
    # Pooled ImageNet features are non-negative with norms of tens: typical input at the start of fine-tuning.
    feats = torch.rand(64, 1280) * 1.2
    _, va = head(feats)
    assert va.abs().max() < 0.2
    _, va_big = head(feats * 1e6)
    assert (va_big.abs() <= 1).all() and va_big.abs().max() > 0.99  # tanh bound actually reached


def test_head_dropout_only_in_training():
    torch.manual_seed(0)
    head = MultiTaskHead(32, dropout=0.5)
    f = torch.randn(4, 32)
    head.train()
    assert not torch.equal(head(f)[0], head(f)[0])
    head.eval()
    assert torch.equal(head(f)[0], head(f)[0])
    with pytest.raises(ValueError):
        MultiTaskHead(32, dropout=1.0)


def _bn_modes(modules):
    return [m.training for s in modules for m in s.modules() if isinstance(m, _BatchNorm)]


def test_freeze_first_k_stages_keeps_their_batchnorm_in_eval():
    model = create_model("resnet18", weights="none")
    model.freeze_backbone(2)
    stages = model.stages()
    assert all(not p.requires_grad for s in stages[:2] for p in s.parameters())
    assert all(p.requires_grad for s in stages[2:] for p in s.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    model.train()
    assert not any(_bn_modes(stages[:2]))
    assert all(_bn_modes(stages[2:]))
    # Frozen BN statistics do not move during a training forward pass; unfrozen ones do.
    frozen_bn = model.backbone.bn1
    live_bn = model.backbone.layer3[0].bn1
    before = frozen_bn.running_mean.clone(), live_bn.running_mean.clone()
    model(torch.randn(4, 3, 32, 32) * 3 + 1)
    assert torch.equal(frozen_bn.running_mean, before[0])
    assert not torch.equal(live_bn.running_mean, before[1])
    model.eval()
    assert not any(_bn_modes(stages))


def test_freeze_all_and_unfreeze():
    model = create_model("mobilenet_v2", weights="none")
    model.freeze_backbone()
    assert not any(p.requires_grad for p in model.backbone.parameters())
    model.train()
    assert not any(m.training for m in model.backbone.modules() if isinstance(m, _BatchNorm))
    assert model.head.training
    model.unfreeze_backbone()
    assert all(p.requires_grad for p in model.backbone.parameters())
    assert all(m.training for m in model.backbone.modules() if isinstance(m, _BatchNorm))
    with pytest.raises(ValueError, match="k must be in"):
        model.freeze_backbone(6)


def test_freeze_timm_efficientnet_stages():
    model = create_model("efficientnet_lite0", weights="none")
    model.freeze_backbone(3)
    model.train()
    assert not model.backbone.conv_stem.weight.requires_grad
    assert not model.backbone.blocks[1][0].conv_pw.weight.requires_grad
    assert model.backbone.blocks[2][0].conv_pw.weight.requires_grad
    assert not model.backbone.bn1.training and model.backbone.bn2.training


def test_frozen_model_deepcopies():
    model = create_model("resnet18", weights="none")
    model.freeze_backbone(1)
    clone = copy.deepcopy(model)
    clone.train()
    assert not clone.backbone.bn1.training and not clone.backbone.conv1.weight.requires_grad


def test_timm_backbone():
    model = create_model("timm:resnet18", weights="none").eval()
    assert model.num_features == 512
    logits, va = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 8) and va.shape == (2, 2)
    assert len(model.stages()) == 5  # stem + layer1..4
    assert model.preprocess["mean"] == pytest.approx((0.485, 0.456, 0.406))


def test_timm_vit_root_parameters_join_the_stem():
    model = create_model("timm:vit_tiny_patch16_224", weights="none")
    stem = model.stages()[0]
    assert any(p is model.backbone.cls_token for p in stem.parameters())
    model.freeze_backbone(1)
    assert not model.backbone.pos_embed.requires_grad and model.backbone.blocks[0].attn.qkv.weight.requires_grad


def test_unknown_names_raise():
    with pytest.raises(ValueError, match="unknown backbone 'resnet51' \\(did you mean 'resnet50'"):
        create_model("resnet51", weights="none")
    with pytest.raises(ValueError, match="unknown timm model"):
        create_model("timm:not_a_model", weights="none")


def test_register_model_rejects_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        register_model("resnet18")(lambda: None)


def test_channels_last_forward_matches_contiguous():
    torch.manual_seed(0)
    for name in ("resnet18", "efficientnet_lite0"):
        model = create_model(name, weights="none").eval()
        x = torch.randn(2, 3, 64, 64)
        with torch.no_grad():
            ref_logits, ref_va = model(x)
            model = model.to(memory_format=torch.channels_last)
            logits, va = model(x.contiguous(memory_format=torch.channels_last))
        assert torch.allclose(logits, ref_logits, atol=1e-4) and torch.allclose(va, ref_va, atol=1e-4)


def test_affect_model_on_custom_backbone():
    backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model = AffectModel(backbone, num_features=4)
    assert len(model.stages()) == 2  # children with parameters
    logits, va = model(torch.randn(2, 3, 8, 8))
    assert logits.shape == (2, 8) and va.shape == (2, 2)
