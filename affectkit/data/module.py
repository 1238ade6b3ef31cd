"""The Lightning DataModule: read a dataset, split it, build the decoded store, serve loaders."""
from __future__ import annotations

import os
from collections import Counter

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler

from affectkit.data.dataset import AffectDataset, collate
from affectkit.data.records import Records, Sample


class AffectDataModule(L.LightningDataModule):
    """Splits ``records`` with ``split`` (key lists per part) and serves uint8 image batches.

    Normalisation and augmentation happen on the device, on whole batches (see ``affectkit.training.augment``),
    so loaders only move bytes.
    """

    def __init__(self, records: Records, split: dict[str, list[str]], image_size: int = 224, batch_size: int = 32,
                 cache: bool = True, num_workers: int = -1, balanced_sampling: bool = False, seed: int = 0,
                 strict: bool = False, progress: bool = False):
        super().__init__()
        self.records = records
        self.split = split
        self.image_size = image_size
        self.batch_size = batch_size
        self.cache = cache
        self.num_workers = num_workers
        self.balanced_sampling = balanced_sampling
        self.seed = seed
        self.strict = strict
        self.progress = progress
        self.datasets: dict[str, AffectDataset] = {}

    def parts(self) -> dict[str, list[Sample]]:
        from affectkit.data.splits import apply_split

        return apply_split(self.records, self.split)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        parts = {k: v for k, v in self.parts().items() if v}
        if self.cache:
            from affectkit.data.cache import build_store

            # one store per part keeps each part's build independent of the others' changes
            for name, samples in parts.items():
                store = build_store(samples, self.image_size, strict=self.strict, progress=self.progress)
                self.datasets[name] = AffectDataset(samples, self.image_size, store=store)
        else:
            for name, samples in parts.items():
                self.datasets[name] = AffectDataset(samples, self.image_size)

    def class_counts(self, part: str = "train") -> np.ndarray:
        ds = self.datasets[part]
        exp = ds.labels["expression"][ds.valid]
        return np.bincount(exp[exp >= 0], minlength=8)

    def _workers(self) -> int:
        if self.num_workers >= 0:
            return self.num_workers
        # A memory-mapped store needs no decode workers; on-the-fly decoding does.
        return 0 if self.cache else min(4, os.cpu_count() or 1)

    def _loader(self, part: str, train: bool) -> DataLoader:
        ds = self.datasets[part]
        workers = self._workers()
        kw = dict(batch_size=self.batch_size, num_workers=workers, collate_fn=collate,
                  pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0)
        if workers > 0:
            kw["prefetch_factor"] = 4
        if train and self.balanced_sampling:
            exp = ds.labels["expression"][ds.valid]
            counts = Counter(exp.tolist())
            w = np.array([1.0 / counts[e] for e in exp])
            g = torch.Generator().manual_seed(self.seed)
            kw["sampler"] = WeightedRandomSampler(torch.as_tensor(w), num_samples=len(ds), replacement=True, generator=g)
        else:
            kw["shuffle"] = train
        return DataLoader(ds, drop_last=train and len(ds) > self.batch_size, **kw)

    def train_dataloader(self):
        return self._loader("train", True)

    def val_dataloader(self):
        return self._loader("val", False)

    def test_dataloader(self):
        return self._loader("test", False)
