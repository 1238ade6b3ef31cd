"""Torch datasets over samples: labels as arrays, images from a decoded store or decoded on the fly."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch.utils.data import Dataset

from affectkit.data.records import Sample
from affectkit.labels import NUM_EXPRESSIONS


def label_arrays(samples: list[Sample]) -> dict[str, np.ndarray]:
    """Targets as arrays; a missing label is -1 (expression) or NaN (valence/arousal, soft)."""
    n = len(samples)
    exp = np.full(n, -1, dtype=np.int64)
    soft = np.full((n, NUM_EXPRESSIONS), np.nan, dtype=np.float32)
    val = np.full(n, np.nan, dtype=np.float32)
    aro = np.full(n, np.nan, dtype=np.float32)
    for i, s in enumerate(samples):
        if s.expression is not None:
            exp[i] = s.expression
        if s.soft_label is not None:
            soft[i] = s.soft_label
        elif s.expression is not None:
            soft[i] = 0.0
            soft[i, s.expression] = 1.0
        if s.valence is not None:
            val[i] = s.valence
        if s.arousal is not None:
            aro[i] = s.arousal
    return {"expression": exp, "soft": soft, "valence": val, "arousal": aro}


class AffectDataset(Dataset):
    """Items are dicts: ``image`` uint8 (3, S, S), ``expression`` (-1 = none), ``soft`` (8,), ``valence``,
    ``arousal`` (NaN = none) and ``index`` into ``samples``.

    With a ``store`` (see ``affectkit.data.cache``) images come from the memory map and batches are fetched with
    one fancy-index (``__getitems__``); images that failed to decode are left out up front. Without one, images
    are decoded per item and a bad file yields ``None``, which `collate` drops, so an epoch never stops on it.
    """

    def __init__(self, samples: list[Sample], image_size, store=None, store_index: np.ndarray | None = None):
        from affectkit.data.cache import as_preprocess

        self.samples = samples
        self.preprocess = as_preprocess(image_size)  # a Preprocess, or a pixel size for the default contract
        self.image_size = self.preprocess.input_size
        self.store = store
        self.labels = label_arrays(samples)
        self.store_index = np.arange(len(samples)) if store_index is None else np.asarray(store_index)
        if store is not None:
            keep = store.ok[self.store_index]
            self.valid = np.flatnonzero(keep)
        else:
            self.valid = np.arange(len(samples))

    def __len__(self) -> int:
        return len(self.valid)

    def _targets(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        return {
            "expression": torch.from_numpy(self.labels["expression"][idx]),
            "soft": torch.from_numpy(self.labels["soft"][idx]),
            "valence": torch.from_numpy(self.labels["valence"][idx]),
            "arousal": torch.from_numpy(self.labels["arousal"][idx]),
            "index": torch.from_numpy(idx.astype(np.int64)),
        }

    def samples_image(self, i: int) -> np.ndarray:
        """The (S, S, 3) uint8 image of sample ``i`` as the model sees it (before normalisation)."""
        if self.store is not None:
            return np.asarray(self.store.images[self.store_index[i]])
        from affectkit.data.cache import decode_resized

        return decode_resized(self.samples[i], self.preprocess)

    def __getitems__(self, positions: list[int]):
        idx = self.valid[np.asarray(positions, dtype=np.int64)]
        if self.store is None:
            return [self[p] for p in positions]
        src = self.store_index[idx]
        order = np.argsort(src)  # sorted reads are kinder to the page cache
        imgs = np.empty((len(src), self.image_size, self.image_size, 3), dtype=np.uint8)
        imgs[order] = self.store.images[src[order]]
        batch = self._targets(idx)
        batch["image"] = torch.from_numpy(imgs).permute(0, 3, 1, 2)
        return batch

    def __getitem__(self, pos: int):
        i = int(self.valid[pos])
        if self.store is not None:
            img = np.asarray(self.store.images[self.store_index[i]])
        else:
            from affectkit.data.cache import decode_resized

            try:
                img = decode_resized(self.samples[i], self.preprocess)
            except Exception as e:
                warnings.warn(f"skipping unreadable image {self.samples[i].image}: {e}", stacklevel=2)
                return None
        item = {k: v[0] for k, v in self._targets(np.array([i])).items()}
        # decoded images can be read-only views (PIL, memory maps): torch warns on those, so copy only then
        item["image"] = torch.from_numpy(np.require(img, requirements=["C", "W"])).permute(2, 0, 1)
        return item


def collate(items):
    """Batch items, dropping ``None`` (unreadable files); an already-batched dict passes through."""
    if isinstance(items, dict):
        return items
    items = [it for it in items if it is not None]
    if not items:
        return None
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}
