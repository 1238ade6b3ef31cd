"""AffectModel: an image backbone with a multi-task (expression + valence/arousal) head."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from affectkit.models.head import MultiTaskHead

__all__ = ["AffectModel"]


class AffectModel(nn.Module):
    """images (B, 3, H, W), normalised per ``preprocess`` -> (logits (B, num_classes), va (B, 2) in [-1, 1]).

    Attributes: ``backbone`` (images -> pooled features (B, num_features)), ``head`` (:class:`MultiTaskHead`),
    ``num_features``, ``num_classes``, ``preprocess`` (dict with ``mean``, ``std``, ``input_size``,
    ``interpolation``), ``backbone_name``.

    Freezing: ``freeze_backbone(k)`` stops gradients for the first ``k`` of :meth:`stages` (all of the backbone
    when ``k is None``); BatchNorm layers in frozen stages are kept in eval mode by :meth:`train`, so their
    running statistics stay those of the pretrained weights.
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_features: int,
        num_classes: int = 8,
        dropout: float = 0.0,
        preprocess: dict | None = None,
        backbone_name: str = "custom",
        hidden: int | None = None,
        stages_fn: Callable[[nn.Module], list[nn.Module]] | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = MultiTaskHead(num_features, num_classes=num_classes, dropout=dropout, hidden=hidden)
        self.num_features = num_features
        self.num_classes = num_classes
        self.backbone_name = backbone_name
        self.preprocess = (
            dict(preprocess)
            if preprocess
            else {
                "mean": (0.485, 0.456, 0.406),
                "std": (0.229, 0.224, 0.225),
                "input_size": 224,
                "interpolation": "bilinear",
            }
        )
        # Must be a module-level function (not a lambda) for the model to stay picklable.
        self._stages_fn = stages_fn
        self._frozen: int | bool | None = False  # False: nothing frozen; None: whole backbone; int: first k stages

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.backbone(x))

    def stages(self) -> list[nn.Module]:
        """Backbone sub-modules from input to output (they share parameters with ``backbone``)."""
        if self._stages_fn is not None:
            return self._stages_fn(self.backbone)
        return [m for m in self.backbone.children() if any(True for _ in m.parameters())]

    def _frozen_modules(self) -> Iterator[nn.Module]:
        if self._frozen is False:
            return iter(())
        if self._frozen is None:
            return self.backbone.modules()
        return (m for stage in self.stages()[: self._frozen] for m in stage.modules())

    def freeze_backbone(self, k: int | None = None) -> AffectModel:
        """Freeze the whole backbone (``k=None``) or its first ``k`` stages; returns self."""
        self.unfreeze_backbone()
        if k is None:
            params = list(self.backbone.parameters())
        else:
            n = len(self.stages())
            if not 0 <= k <= n:
                raise ValueError(f"k must be in [0, {n}] for {self.backbone_name} ({n} stages), got {k}")
            params = [p for stage in self.stages()[:k] for p in stage.parameters()]
        for p in params:
            p.requires_grad_(False)
        self._frozen = k
        return self.train(self.training)

    def unfreeze_backbone(self) -> AffectModel:
        for p in self.backbone.parameters():
            p.requires_grad_(True)
        self._frozen = False
        return self.train(self.training)

    def train(self, mode: bool = True) -> AffectModel:
        super().train(mode)
        if mode:
            for m in self._frozen_modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def extra_repr(self) -> str:
        return f"backbone_name={self.backbone_name!r}, num_features={self.num_features}, frozen={self._frozen}"
