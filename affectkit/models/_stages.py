"""Backbone stages for ``AffectModel.freeze_backbone(k)``, declared as timm group matchers.

A matcher maps parameter names to ordered groups (``timm.models._manipulate.group_parameters``): timm models
bring their own (``model.group_matcher(coarse=True)``), torchvision backbones declare one in their family
module. Each group becomes one stage: a module holding the leaf modules that own the group's parameters
(so their BatchNorm layers follow the stage's train/eval mode) plus loose root parameters such as ViT's
``cls_token``.
"""

from __future__ import annotations

import itertools
from functools import partial
from typing import Any, cast

from torch import nn

__all__ = ["StageGroup", "grouped_stages", "index_matcher", "matcher_stages", "timm_stages"]

# Distinct from timm's MATCH_PREV_GROUP (99999), which folds head-side layers into the last block.
_OWN_TAIL = (99998,)


class StageGroup(nn.Module):
    """A stage made of several modules (and loose parameters such as ViT's cls_token)."""

    def __init__(self, modules: list[nn.Module], params: dict[str, nn.Parameter] | None = None) -> None:
        super().__init__()
        self.members = nn.ModuleList(modules)
        for n, p in (params or {}).items():
            self.register_parameter(n.replace(".", "_"), p)


def grouped_stages(model: nn.Module, matcher: dict) -> list[nn.Module]:
    """Stages of ``model`` from a timm-style group matcher, input to output; unmatched parameters form a
    last stage (timm's convention)."""
    from timm.models._manipulate import group_parameters

    stages: list[nn.Module] = []
    for _, names in sorted(group_parameters(model, matcher).items()):
        modules: dict[int, nn.Module] = {}
        root: dict[str, nn.Parameter] = {}
        for name in names:
            owner, _, leaf = name.rpartition(".")
            if owner:
                m = model.get_submodule(owner)
                modules.setdefault(id(m), m)
            else:
                root[leaf] = model.get_parameter(leaf)
        stages.append(StageGroup(list(modules.values()), root))
    return stages


def matcher_stages(matcher: dict):
    """A picklable ``stages(backbone)`` function for a fixed matcher."""
    return partial(grouped_stages, matcher=matcher)


def index_matcher(container: str, bounds: tuple[int, ...]) -> dict[str, str]:
    """Matcher grouping ``container[bounds[i]:bounds[i + 1]]`` (an nn.Sequential) into stage ``i``."""
    return {
        f"stage{i}": rf"^{container}\.(?:{'|'.join(str(j) for j in range(a, b))})\."
        for i, (a, b) in enumerate(itertools.pairwise(bounds))
    }


def _own_tail(matcher: dict) -> dict:
    # timm puts e.g. EfficientNet's conv_head/bn2 and ViT's final norm into the last block's group; here they
    # stay a stage of their own, so the last block can be trained apart from them (and k keeps its meaning).
    if not isinstance(matcher, dict):
        return matcher
    out = {}
    for key, spec in matcher.items():
        if isinstance(spec, (list, tuple)):
            spec = [(rx, _OWN_TAIL if tuple(suffix or ()) == (99999,) else suffix) for rx, suffix in spec]
        out[key] = spec
    return out


def timm_stages(model: nn.Module) -> list[nn.Module]:
    """Stages of a timm model from its coarse ``group_matcher``: stem, each block stage, head-side layers."""
    matcher = cast(Any, model).group_matcher  # a timm model method that nn.Module does not declare
    return grouped_stages(model, _own_tail(matcher(coarse=True)))
