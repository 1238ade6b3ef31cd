"""The Lightning DataModule: read a dataset, split it, build the decoded store, serve loaders."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler, WeightedRandomSampler

from affectkit.data.dataset import AffectDataset, collate
from affectkit.data.records import Records, Sample


class EpochShuffleSampler(RandomSampler):
    """A shuffling sampler whose order is a pure function of ``(seed, epoch)``.

    Lightning calls ``set_epoch`` before each epoch, so an interrupted run that resumes replays the same order
    (a plain ``RandomSampler`` draws from the global RNG instead). Being a ``RandomSampler``, it is swapped for a
    ``DistributedSampler(shuffle=True)`` under DDP, which is seeded per epoch the same way.
    """

    def __init__(self, data_source, seed: int = 0):
        super().__init__(data_source)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1  # a new order next pass even where nobody calls set_epoch
        yield from torch.randperm(len(self.data_source), generator=g).tolist()


class EpochWeightedSampler(WeightedRandomSampler):
    """Class-balanced draws (with replacement) that are a pure function of ``(seed, epoch)``, like
    `EpochShuffleSampler`. Under DDP Lightning wraps it and does not forward ``set_epoch``; each pass then
    advances the epoch itself (fresh draws every epoch, but a mid-epoch resume is not replayed exactly)."""

    def __init__(self, weights, num_samples: int, seed: int = 0):
        super().__init__(weights, num_samples=num_samples, replacement=True)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        self.generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1
        yield from super().__iter__()


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` that Lightning can checkpoint mid-epoch: ``state_dict()`` counts the batches served in the
    current epoch and, after ``load_state_dict``, the next epoch's iteration skips that many.

    Lightning saves this state with the loops and restores it only when resuming inside an epoch. With a
    seeded per-epoch order (`EpochShuffleSampler`, or DDP's ``DistributedSampler``) the skipped batches are
    exactly the ones trained on before the interruption. Iteration is lazy so the sampler sees ``set_epoch``
    first. The class adds no constructor arguments: Lightning re-creates loaders (DDP samplers) from them.
    """

    def __iter__(self):
        skip = getattr(self, "_skip", 0)
        self._skip = 0
        self._served = 0
        return self._batches(skip)

    def _batches(self, skip: int):
        it = super().__iter__()
        for _ in range(skip):  # a store-backed batch is one memory-map gather: cheap to drop
            next(it, None)
        self._served = skip
        for batch in it:
            self._served += 1
            yield batch

    def state_dict(self) -> dict:
        return {"batches_served": int(getattr(self, "_served", 0))}

    def load_state_dict(self, state: dict) -> None:
        self._skip = int(state.get("batches_served", 0))


class AffectDataModule(L.LightningDataModule):
    """Splits ``records`` with ``split`` (key lists per part) and serves uint8 image batches.

    Normalisation and augmentation happen on the device, on whole batches (see ``affectkit.training.augment``),
    so loaders only move bytes.
    """

    def __init__(
        self,
        records: Records,
        split: dict[str, list[str]],
        image_size=224,
        batch_size: int = 32,
        cache: bool = True,
        num_workers: int = -1,
        balanced_sampling: bool = False,
        seed: int = 0,
        strict: bool = False,
        progress: bool = False,
        decode_device: str | None = None,
        source_weights: dict[str, float] | None = None,
    ):
        """``source_weights``: dataset name -> share of the training draws, for a multi-dataset run (keys
        prefixed ``name/``; see ``affectkit.data.sources``)."""
        super().__init__()
        from affectkit.data.cache import as_preprocess

        self.records = records
        self.split = split
        # image_size: the model's Preprocess (or a pixel size for the default RGB contract)
        self.preprocess = as_preprocess(image_size)
        self.image_size = self.preprocess.input_size
        self.batch_size = batch_size
        self.cache = cache
        self.num_workers = num_workers
        self.balanced_sampling = balanced_sampling
        self.seed = seed
        self.strict = strict
        self.progress = progress
        self.decode_device = decode_device
        self.source_weights = source_weights
        self.datasets: dict[str, AffectDataset] = {}
        self._named_bad_files = False

    def parts(self) -> dict[str, list[Sample]]:
        from affectkit.data.splits import apply_split

        return apply_split(self.records, self.split)

    def prepare_data(self) -> None:
        # Lightning runs this on one process per node before `setup` on every rank: ranks don't all decode.
        if self.cache:
            from affectkit.data.cache import build_store

            for samples in self.parts().values():
                if samples:
                    build_store(
                        samples,
                        self.preprocess,
                        strict=self.strict,
                        progress=self.progress,
                        decode_device=self.decode_device,
                    )
            self._named_bad_files = True  # setup() below reopens the same stores: name bad files once

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        parts = {k: v for k, v in self.parts().items() if v}
        if self.cache:
            from affectkit.data.cache import build_store

            # one store per part keeps each part's build independent of the others' changes
            for name, samples in parts.items():
                store = build_store(
                    samples,
                    self.preprocess,
                    strict=self.strict,
                    progress=self.progress,
                    decode_device=self.decode_device,
                    warn=not self._named_bad_files,
                )
                self.datasets[name] = AffectDataset(samples, self.preprocess, store=store)
        else:
            for name, samples in parts.items():
                self.datasets[name] = AffectDataset(samples, self.preprocess)

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
        # Own generator: creating an iterator then never draws from the global RNG, which a resumed run restores.
        kw: dict[str, Any] = dict(
            batch_size=self.batch_size,
            num_workers=workers,
            collate_fn=collate,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=workers > 0,
            generator=torch.Generator().manual_seed(self.seed),
        )
        if workers > 0:
            kw["prefetch_factor"] = 4
        if train and self.source_weights:
            from affectkit.data.sources import draw_weights

            w = draw_weights([ds.samples[i] for i in ds.valid], self.source_weights, self.balanced_sampling)
            kw["sampler"] = EpochWeightedSampler(torch.as_tensor(w), num_samples=len(ds), seed=self.seed)
        elif train and self.balanced_sampling:
            exp = ds.labels["expression"][ds.valid]
            counts = Counter(exp.tolist())
            w = np.array([1.0 / counts[e] for e in exp])
            kw["sampler"] = EpochWeightedSampler(torch.as_tensor(w), num_samples=len(ds), seed=self.seed)
        elif train:
            kw["sampler"] = EpochShuffleSampler(ds, seed=self.seed)
        return ResumableDataLoader(ds, drop_last=train and len(ds) > self.batch_size, **kw)

    def train_dataloader(self):
        return self._loader("train", True)

    def val_dataloader(self):
        return self._loader("val", False)

    def test_dataloader(self):
        return self._loader("test", False)
