"""Multi-task head: expression logits plus (valence, arousal) in [-1, 1]."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MultiTaskHead"]


class MultiTaskHead(nn.Module):
    """Pooled features (B, in_features) -> (logits (B, num_classes), va (B, 2)).

    Each branch is dropout -> Linear (independent dropout masks); VA goes through tanh so valence and
    arousal stay in [-1, 1]. ``hidden`` adds a shared Linear -> ReLU trunk of that width before the branches.
    """

    def __init__(self, in_features: int, num_classes: int = 8, dropout: float = 0.0, hidden: int | None = None) -> None:
        super().__init__()
        if in_features <= 0 or num_classes <= 0:
            raise ValueError(f"in_features and num_classes must be positive, got {in_features}, {num_classes}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.in_features = in_features
        self.num_classes = num_classes
        self.hidden = int(hidden) if hidden else None  # stored in checkpoints so the trunk is rebuilt on load
        self.trunk: nn.Module = nn.Identity()
        width = in_features
        if hidden:
            self.trunk = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True))
            width = hidden
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width, num_classes)
        self.va = nn.Linear(width, 2)
        # Small init: pooled ImageNet features are non-negative with norms ~10-40, so a default (or even
        # std 0.01) VA layer starts tanh at +-0.5..1, biased and with shrunken gradients; std 1e-3 keeps it ~0.
        nn.init.normal_(self.va.weight, std=1e-3)
        nn.init.zeros_(self.va.bias)
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(features)
        logits = self.classifier(self.dropout(h))
        va = torch.tanh(self.va(self.dropout(h)))
        return logits, va
