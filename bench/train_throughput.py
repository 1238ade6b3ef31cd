"""Training throughput: how close the full pipeline gets to the model's own speed, and how it compares with a
naive per-sample pipeline.

Figures (images/s):

(a) model alone: forward + multi-task loss + backward + optimizer step on tensors already in memory, with the
    trainer's precision (``default_precision``: bf16-mixed autocast on CPUs with fast bf16) and channels_last;
(b) full pipeline: a synthetic JPEG folder -> ``AffectDataModule`` (decoded store on) -> ``AffectModule`` -> a
    Lightning ``Trainer.fit`` for fixed steps; first epoch (store build + epoch 1, engine warm-up included) and
    steady state (later epochs), store build time also reported alone;
(c) evaluation: ``Trainer.test`` over the test loader, next to the model's own inference speed;
(d) naive: per-sample JPEG decode (OpenCV if importable, else PIL), labels from one ``.npy`` per label read in
    the loop, torchvision per-sample transforms, default collate, single process, the same model step;
(d') hand-made: the naive pipeline as a first script runs it, with PyTorch's defaults (fp32, contiguous
    memory, ``torch.optim.Adam``): what a user's own training loop costs; ours/hand-made is the speed-up
    affectkit's defaults buy;
(e) data path alone (no model): our loader + on-device augmentation vs the naive loader.

Run: ``python bench/train_throughput.py --backbone resnet50 --image-size 224 --n 512 --batch-size 32``.
Throughput depends on every other process on the machine: the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from affectkit.machine import describe


def load_avg() -> str:
    try:
        return f"load {os.getloadavg()[0]:.2f}"
    except OSError:
        return "load ?"


def make_module(backbone: str, size: int, batch_size: int, **extra):
    from affectkit.training.config import TrainConfig
    from affectkit.training.module import AffectModule
    from affectkit.training.run import default_precision

    cfg = TrainConfig(
        backbone=backbone,
        weights="none",
        image_size=size,
        batch_size=batch_size,
        precision=default_precision("cpu"),
        accelerator="cpu",
        progress=False,
        **extra,
    )
    return AffectModule(cfg.to_dict()), cfg


def autocast_ctx(precision: str):
    if precision.startswith("bf16"):
        return torch.autocast("cpu", dtype=torch.bfloat16)
    import contextlib

    return contextlib.nullcontext()


def model_step_fn(module, precision: str, hand_made: bool = False):
    """One training step as Lightning runs it: autocast forward + loss, backward, optimizer step, zero_grad.

    The optimizer is the module's own (``configure_optimizers``), or with ``hand_made`` plain
    ``torch.optim.Adam`` with PyTorch's defaults, as a first script writes it."""
    from affectkit.training.losses import multitask_loss

    if hand_made:
        opt = torch.optim.Adam(module.model.parameters(), lr=1e-4)
    else:
        opt = module.configure_optimizers()
        assert isinstance(opt, torch.optim.Optimizer), "bench configs use no schedule"
    c = module.cfg

    def step(x, batch):
        with autocast_ctx(precision):
            logits, va = module.model(x)
            loss = multitask_loss(
                logits,
                va,
                batch,
                expression_loss=c.expression_loss,
                class_weight=None,
                label_smoothing=c.label_smoothing,
                va_kind=c.va_loss,
                weights=(c.loss_expression, c.loss_valence, c.loss_arousal),
            )["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    return step


def fake_batch(bs: int, size: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(bs, 3, size, size, generator=g).contiguous(memory_format=torch.channels_last)
    exp = torch.randint(0, 8, (bs,), generator=g)
    batch = {
        "expression": exp,
        "soft": torch.nn.functional.one_hot(exp, 8).float(),
        "valence": torch.rand(bs, generator=g) * 2 - 1,
        "arousal": torch.rand(bs, generator=g) * 2 - 1,
    }
    return x, batch


def bench_model_alone(backbone, size, bs, steps, precision):
    """Images/s of (a): over all timed steps, and from the median step (robust to other processes' bursts)."""
    module, _ = make_module(backbone, size, bs)
    module.train()
    step = model_step_fn(module, precision)
    x, batch = fake_batch(bs, size)
    for _ in range(3):  # warm-up: oneDNN primitive creation, allocator
        step(x, batch)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step(x, batch)
        times.append(time.perf_counter() - t)
    train, train_median = steps * bs / sum(times), bs / statistics.median(times)
    module.eval()
    with torch.inference_mode(), autocast_ctx(precision):
        module.model(x)
        t = time.perf_counter()
        for _ in range(steps):
            module.model(x)
        infer = steps * bs / (time.perf_counter() - t)
    return train, train_median, infer


class EpochTimer:
    """Lightning callback: wall time of each training epoch (start hook to end hook, loader fetches included)."""

    def __new__(cls):
        from lightning.pytorch.callbacks import Callback

        class _T(Callback):
            def __init__(self):
                self.times: list[float] = []
                self.batches: list[int] = []
                self.step_times: list[float] = []

            def on_train_epoch_start(self, trainer, pl_module):
                self._t = time.perf_counter()
                self._b = time.perf_counter()
                self._n = 0

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                now = time.perf_counter()
                self.step_times.append(now - self._b)
                self._b = now
                self._n += batch["image"].shape[0]

            def on_train_epoch_end(self, trainer, pl_module):
                self.times.append(time.perf_counter() - self._t)
                self.batches.append(self._n)

        return _T()


def bench_pipeline(data: Path, backbone, size, bs, epochs, steps, eval_batch):
    import lightning as L

    from affectkit.data import read_dataset
    from affectkit.data.module import AffectDataModule
    from affectkit.training.run import quiet_lightning

    quiet_lightning()
    records = read_dataset(data)
    keys = [s.key for s in records.samples]
    split = {"train": keys, "val": [], "test": keys}
    t = time.perf_counter()
    dm = AffectDataModule(records, split, image_size=size, batch_size=bs, cache=True, progress=False)
    dm.setup("fit")
    build = time.perf_counter() - t
    module, cfg = make_module(backbone, size, bs)
    timer = EpochTimer()
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        precision=cfg.precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        limit_train_batches=steps,
        callbacks=[timer],
        log_every_n_steps=10,
    )
    trainer.fit(module, datamodule=dm)
    first = timer.batches[0] / (build + timer.times[0])
    first_no_build = timer.batches[0] / timer.times[0]
    steady = sum(timer.batches[1:]) / sum(timer.times[1:]) if epochs > 1 else float("nan")
    n_steps = len(timer.step_times) // epochs
    steady_median = bs / statistics.median(timer.step_times[n_steps:] or timer.step_times)

    dm_eval = AffectDataModule(records, {"test": keys}, image_size=size, batch_size=eval_batch, cache=True)
    trainer_t = L.Trainer(
        accelerator="cpu",
        devices=1,
        precision=cfg.precision,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    dm_eval.setup("test")
    trainer_t.test(module, datamodule=dm_eval, verbose=False)  # warm-up (oneDNN inference primitives)
    t = time.perf_counter()
    trainer_t.test(module, datamodule=dm_eval, verbose=False)
    evaluation = len(dm_eval.datasets["test"]) / (time.perf_counter() - t)

    # data path alone: batches from the store plus the module's on-device preparation (augment, normalise)
    loader = dm.train_dataloader()
    t = time.perf_counter()
    n = 0
    for b in loader:
        module.prepare(b["image"], train=True)
        n += b["image"].shape[0]
    data_only = n / (time.perf_counter() - t)
    return dict(
        build_s=build,
        first=first,
        first_no_build=first_no_build,
        steady=steady,
        steady_median=steady_median,
        evaluation=evaluation,
        data_only=data_only,
    )


class NaiveDataset(torch.utils.data.Dataset):
    """What a first PyTorch script does: decode each JPEG per item, read each label from its own .npy file."""

    def __init__(self, root: Path, size: int):
        import torchvision.transforms as T

        self.images = sorted((root / "images").glob("*.jpg"))
        self.ann = root / "annotations"
        self.tf = T.Compose(
            [
                T.Resize((size, size)),
                T.RandomHorizontalFlip(),
                T.ToTensor(),
                T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
            ]
        )
        try:
            import cv2

            self.cv2 = cv2
        except ImportError:
            self.cv2 = None

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        from PIL import Image

        p = self.images[i]
        if self.cv2 is not None:
            arr = self.cv2.cvtColor(self.cv2.imread(str(p)), self.cv2.COLOR_BGR2RGB)
            img = Image.fromarray(arr)
        else:
            img = Image.open(p).convert("RGB")
        x = self.tf(img)
        stem = p.stem
        exp = int(np.load(self.ann / f"{stem}_exp.npy"))
        val = float(np.load(self.ann / f"{stem}_val.npy"))
        aro = float(np.load(self.ann / f"{stem}_aro.npy"))
        soft = torch.zeros(8)
        soft[exp] = 1
        return x, {
            "expression": exp,
            "soft": soft,
            "valence": torch.tensor(val, dtype=torch.float32),
            "arousal": torch.tensor(aro, dtype=torch.float32),
        }


def bench_naive(data: Path, backbone, size, bs, steps, precision, channels_last: bool = True, hand_made: bool = False):
    ds = NaiveDataset(data, size)
    loader = torch.utils.data.DataLoader(ds, batch_size=bs, shuffle=True, num_workers=0, drop_last=True)
    module, _ = make_module(backbone, size, bs, channels_last=channels_last)
    module.train()
    step = model_step_fn(module, precision, hand_made=hand_made)
    x, batch = fake_batch(bs, size)
    step(x, batch)  # same warm-up as (a)
    n = 0
    t = time.perf_counter()
    for i, (x, batch) in enumerate(loader):
        if i >= steps:
            break
        step(x.contiguous(memory_format=torch.channels_last) if channels_last else x, batch)
        n += x.shape[0]
    train = n / (time.perf_counter() - t)
    t = time.perf_counter()
    n = 0
    for i, (x, _) in enumerate(loader):
        if i >= steps:
            break
        n += x.shape[0]
    data_only = n / (time.perf_counter() - t)
    return dict(train=train, data_only=data_only, decoder="opencv" if ds.cv2 is not None else "PIL (no cv2)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbone", default="resnet50")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--n", type=int, default=512, help="synthetic JPEGs (all trained on; also the test set)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=3, help="fit epochs: the first is warm-up, the rest steady")
    ap.add_argument("--steps", type=int, default=None, help="steps per epoch (default: the whole folder)")
    ap.add_argument("--model-steps", type=int, default=None, help="steps timed for (a) (default: as --steps)")
    ap.add_argument("--data", default=None, help="reuse this synth folder instead of generating one")
    args = ap.parse_args(argv)
    print(describe(), flush=True)

    from affectkit.data.synth import generate
    from affectkit.training.run import default_precision

    torch.manual_seed(0)
    precision = default_precision("cpu")
    size, bs = args.image_size, args.batch_size
    steps = args.steps or max(1, args.n // bs)
    model_steps = args.model_steps or min(steps, 10)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["AFFECTKIT_CACHE"] = str(Path(tmp) / "cache")  # a fresh store: the build is measured
        data = Path(args.data) if args.data else generate(Path(tmp) / "faces", args.n, seed=0, size=size)
        print(
            f"{args.backbone} @ {size}px, batch {bs}, n {args.n}, {precision}, channels_last, "
            f"{torch.get_num_threads()} threads ({load_avg()})",
            flush=True,
        )
        a_train, a_median, a_infer = bench_model_alone(args.backbone, size, bs, model_steps, precision)
        print(
            f"(a) model alone       train {a_train:8.1f} img/s (median step {a_median:.1f})   "
            f"inference {a_infer:8.1f} img/s ({load_avg()})",
            flush=True,
        )
        p = bench_pipeline(data, args.backbone, size, bs, args.epochs, steps, eval_batch=64)
        print(
            f"(b) pipeline (fit)    steady {p['steady']:8.1f} img/s (median step {p['steady_median']:.1f})   "
            f"first epoch {p['first']:.1f} img/s incl. store build {p['build_s']:.2f} s "
            f"({p['first_no_build']:.1f} without) ({load_avg()})",
            flush=True,
        )
        print(
            f"(c) evaluation        {p['evaluation']:8.1f} img/s   (model inference {a_infer:.1f}; "
            f"ratio {p['evaluation'] / a_infer:.2f})",
            flush=True,
        )
        a2_train, a2_median, _ = bench_model_alone(args.backbone, size, bs, model_steps, precision)
        print(
            f"(a') model alone again train {a2_train:8.1f} img/s (median step {a2_median:.1f}) ({load_avg()})",
            flush=True,
        )
        a_best = max(a_train, a2_train)
        print(
            f"    b/a = {p['steady'] / a_best:.3f} (steady epochs / best of a, a')   "
            f"{p['steady_median'] / max(a_median, a2_median):.3f} (median steps)",
            flush=True,
        )
        nv = bench_naive(data, args.backbone, size, bs, steps, precision)
        print(
            f"(d) naive per-sample  train {nv['train']:8.1f} img/s   decoder {nv['decoder']} ({load_avg()})", flush=True
        )
        print(f"    ours/naive = {p['steady'] / nv['train']:.2f} (training)", flush=True)
        hm = bench_naive(data, args.backbone, size, bs, steps, "32-true", channels_last=False, hand_made=True)
        print(f"(d') hand-made (fp32, contiguous)  train {hm['train']:8.1f} img/s ({load_avg()})", flush=True)
        print(f"    ours/hand-made = {p['steady'] / hm['train']:.2f} (training)", flush=True)
        print(
            f"(e) data path alone   ours {p['data_only']:8.1f} img/s   naive {nv['data_only']:8.1f} img/s   "
            f"ours/naive = {p['data_only'] / nv['data_only']:.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
