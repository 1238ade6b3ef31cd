"""Reading trained models back from `.ckpt` files, safely (``weights_only=True``: a crafted pickle can't run code)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

# also importable from here, their former home
from affectkit.io import atomic_torch_save, resolve_checkpoint
from affectkit.training.rundir import check_same_options

# Extra block every affectkit checkpoint carries, so inference needs no training config machinery.
META_KEY = "affectkit"


def model_meta(model, config: dict[str, Any], preprocess=None, heads: dict[str, bool] | None = None) -> dict[str, Any]:
    """What inference needs besides the weights: the preprocessing contract exactly as training used it
    (``affectkit.preprocess.Preprocess``; from the config when not given) and which heads were trained."""
    from affectkit.preprocess import Preprocess, heads_from_config

    contract = preprocess or Preprocess.from_config(config, model.preprocess)
    return {
        "backbone": model.backbone_name,
        "preprocess": contract.to_dict(),
        "heads": dict(heads) if heads is not None else heads_from_config(config),
        "face_margin": contract.face_margin,
        "dropout": float(config.get("dropout", 0.0)),
        "num_classes": int(config.get("num_classes", 8)),
        "head_hidden": getattr(model.head, "hidden", None),
        "config": config,
    }


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint dict with ``weights_only=True``; clear errors for missing or foreign files. A shipped
    model (its name or its ``.safetensors`` file) reads as the same dict, its fp16 weights as fp32."""
    path = resolve_checkpoint(path)
    if path.suffix.lower() == ".safetensors":
        from affectkit.pretrained import read_safetensors

        return read_safetensors(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling refused or corrupt file
        raise ValueError(f"{path}: not a loadable affectkit checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(ckpt, dict) or META_KEY not in ckpt or "state_dict" not in ckpt:
        raise ValueError(f"{path}: not an affectkit checkpoint (no '{META_KEY}' metadata)")
    return ckpt


def load_model(path: str | Path):
    """Rebuild the trained model from a checkpoint. Returns ``(model in eval mode, meta)``; ``meta["contract"]``
    is the restored :class:`~affectkit.preprocess.Preprocess` and ``meta["heads"]`` the trained heads."""
    from affectkit.models import create_model
    from affectkit.preprocess import restore

    ckpt = read_checkpoint(path)
    meta = dict(ckpt[META_KEY])
    meta["contract"], meta["heads"] = restore(meta)
    model = create_model(
        meta["backbone"],
        weights="none",
        dropout=meta.get("dropout", 0.0),
        num_classes=meta.get("num_classes", 8),
        hidden=meta.get("head_hidden"),
    )
    prefix = "model."
    state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    load_strict(model, state, path, meta["backbone"])
    c = meta["contract"]
    model.preprocess = {"mean": c.mean, "std": c.std, "input_size": c.input_size, "interpolation": c.interpolation}
    model.eval()
    return model, meta


def load_strict(module: torch.nn.Module, state: dict[str, Any], path, backbone: str | None) -> None:
    """``load_state_dict(strict=True)``, with an error that names the file, the backbone and the keys that do
    not fit (never a half-loaded model that evaluates random weights)."""
    try:
        module.load_state_dict(state, strict=True)
        return
    except RuntimeError as e:
        text = str(e)
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} has shape {tuple(state[k].shape)}, the model {tuple(own[k].shape)}"
        for k in own
        if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    parts = [
        f"{len(keys)} {what} keys (e.g. {', '.join(keys[:3])})"
        for what, keys in (("missing", missing), ("unexpected", unexpected))
        if keys
    ]
    parts += [f"{len(shapes)} of other shapes (e.g. {shapes[0]})"] if shapes else []
    parts = parts or [text.splitlines()[0]]
    raise ValueError(
        f"{path}: its weights do not fit the {backbone!r} model its metadata names: "
        f"{'; '.join(parts)}. The file is damaged or was written for another backbone"
    )


def load_initial_weights(model: torch.nn.Module, path: str | Path, backbone: str) -> Path:
    """Copy a trained model's weights, backbone and head, into ``model`` (an ``AffectModel`` of ``backbone``) so a
    new run starts from them (``initial_checkpoint``). ``path``: run folder, ``.ckpt`` or shipped model name.
    Returns the file read."""
    ckpt = read_checkpoint(path)
    stored = ckpt[META_KEY].get("backbone")
    if stored != backbone:
        raise ValueError(
            f"{path}: initial_checkpoint is a {stored!r} model, this run trains {backbone!r}: "
            f"set --backbone {stored} (or another initial_checkpoint)"
        )
    prefix = "model."
    state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    load_strict(model, state, path, backbone)  # copies cast fp16 (shipped) weights to the model's dtype
    return resolve_checkpoint(path)


def check_resumable(
    path: str | Path, backbone: str, decay_norm_bias: bool | None = None, config: dict[str, Any] | None = None
) -> None:
    """Refuse, with a clear message, to resume from a file that is not a full training checkpoint of this
    backbone (a minimal inference checkpoint, another backbone's run), or whose optimiser has other parameter
    groups (``decay_norm_bias`` differs; runs from before that option decayed everything), or, given the
    resuming run's resolved ``config``, whose run was trained with other options (`check_same_options`):
    a resumed run would silently mix two recipes and overwrite the run's config.yaml with the second."""
    ckpt = read_checkpoint(path)
    if "pytorch-lightning_version" not in ckpt or "loops" not in ckpt:
        raise ValueError(
            f"{path}: not a training checkpoint (no trainer state): it can be evaluated or used for "
            "prediction, but a run resumes only from the last.ckpt that affectkit train wrote"
        )
    stored = (ckpt[META_KEY].get("config") or {}).get("backbone") or ckpt[META_KEY].get("backbone")
    if stored != backbone:
        raise ValueError(
            f"{path}: this run trained backbone {stored!r}, not {backbone!r}: resume with "
            f"--backbone {stored} (or start a new run in another --out)"
        )
    stored_decay = (ckpt[META_KEY].get("config") or {}).get("decay_norm_bias", True)
    if decay_norm_bias is not None and bool(stored_decay) != decay_norm_bias:
        flag = str(bool(stored_decay)).lower()
        raise ValueError(
            f"{path}: this run was trained with decay_norm_bias={flag}: resume with "
            f"--set decay_norm_bias={flag} (its optimiser state has that parameter grouping)"
        )
    check_same_options(ckpt[META_KEY].get("config") or {}, config or {}, path, Path(path).parent.parent)


def save_model_checkpoint(
    model, path: str | Path, config: dict[str, Any] | None = None, preprocess=None, heads: dict[str, bool] | None = None
) -> Path:
    """Write a minimal checkpoint (weights + metadata) that `load_model` and inference accept."""
    config = dict(config or {})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = {
        "state_dict": {f"model.{k}": v.detach().cpu() for k, v in model.state_dict().items()},
        META_KEY: model_meta(model, config, preprocess, heads),
        "hyper_parameters": {"config": config},
    }
    atomic_torch_save(ckpt, path)
    return path
