"""Exact resume: what an interrupted training epoch stores in a checkpoint (RNG states, the epoch's partial
outputs and train-loss sums) and how a resumed run puts it back, so the epoch ends as if it never stopped."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

if TYPE_CHECKING:
    from affectkit.training.module import AffectModule

RESUME_KEY = "affectkit_resume"


def resume_state(module: AffectModule) -> dict[str, Any]:
    """What an interrupted epoch needs to finish as if it never stopped: the RNG states (augmentation and
    dropout draw from them) and the epoch's partial train outputs and loss sums, gathered over ranks.
    Plain tensors, ints and strings only, so the checkpoint still loads with ``weights_only=True``."""
    world = module.trainer.world_size
    torch_rng = torch.get_rng_state()
    if world > 1:  # every rank's stream, so each resumes its own (called on all ranks at save time)
        torch_rng = module._gather(torch_rng.to(module.device)).cpu().reshape(world, -1)
    np_state = cast(tuple, np.random.get_state())  # the legacy tuple form
    state: dict[str, Any] = {
        "torch": torch_rng,
        "world_size": world,
        "numpy": [
            np_state[0],
            torch.from_numpy(np_state[1].astype(np.int64)),
            int(np_state[2]),
            int(np_state[3]),
            float(np_state[4]),
        ],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    g = module.gathered("train")
    state["train_outputs"] = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in g.items()}
    keys = sorted(module._train_sums)
    sums = (
        torch.stack(
            [module._train_sums[k].float() for k in keys]
            + [torch.tensor(float(module._train_count), device=module.device)]
        )
        if keys
        else None
    )
    if sums is not None and world > 1:
        sums = module._gather(sums).reshape(world, -1).sum(0)
    state["train_sums"] = {"keys": keys, "values": sums.cpu() if sums is not None else torch.zeros(0)}
    return state


def restore_resume_state(module: AffectModule, state: dict[str, Any]) -> None:
    """Put back what ``resume_state`` stored: this rank's RNG streams, and on rank 0 the partial epoch."""
    rank, world = module.global_rank, module.trainer.world_size
    t = state["torch"]
    if t.dim() == 2:
        t = t[rank] if state.get("world_size") == world else t[0]
    # a row of the gathered (world, n) tensor has a storage offset: set_rng_state needs a fresh buffer
    torch.set_rng_state(t.to(torch.uint8).cpu().clone())
    kind, key, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, key.numpy().astype(np.uint32), pos, has_gauss, cached))
    ver, internal, gauss = state["python"]
    random.setstate((ver, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    # Partial outputs and sums were gathered over all ranks: rank 0 carries them, the epoch-end gather
    # (deduplicated by sample index) puts them back together with the rest of the epoch.
    outs, sums = state.get("train_outputs") or {}, state.get("train_sums") or {}
    if rank == 0 and outs:
        module._outputs["train"] = [dict(outs)]
    if rank == 0 and sums.get("keys"):
        v = sums["values"].to(module.device)
        module._train_sums = {k: v[i] for i, k in enumerate(sums["keys"])}
        module._train_count = int(v[-1].item())
