"""The run folder: where a run goes, never over another, with which options it resumes, and how a run that never
started is undone."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from affectkit.training.config import TrainConfig

# Where and how a run is computed, not what it learns: these may change when a run is resumed (another machine,
# more loader workers, progress bars off, the next part of its schedule). Every other option must be the run's own.
RESUME_MAY_CHANGE = frozenset(
    {
        "name", "cache", "decode_device", "strict", "precision", "num_workers", "accelerator", "devices",
        "num_nodes", "strategy", "ckpt_every_n_steps", "progress", "stop_after_epochs",
    }
)  # fmt: skip


# Set by the primary process so the ranks Lightning launches later find the same run folder.
RUN_DIR_ENV = "AFFECTKIT_RUN_DIR"


def is_primary_process() -> bool:
    """True unless the environment names this process a non-zero rank (Lightning's launched ranks, torchrun,
    SLURM, a manually started node with NODE_RANK > 0)."""
    for var in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID"):
        v = os.environ.get(var)
        if v not in (None, "", "0"):
            return False
    return True


def free_folder(base: Path) -> Path:
    """``base`` if it is absent or empty, else the first free ``base-2``, ``base-3``, ..."""
    run, i = base, 1
    while run.exists() and any(run.iterdir()):
        i += 1
        run = base.with_name(f"{base.name}-{i}")
    return run


def new_run_dir(out: str | Path | None, cfg: TrainConfig, resume: bool, create: bool = True) -> Path:
    """The run folder: never overwritten silently. A taken ``--out`` is refused unless resuming.

    Only the primary process decides and checks; other ranks of a distributed run take the folder it chose
    (``--out``, or the one it exported in ``$AFFECTKIT_RUN_DIR`` before launching them). ``create=False`` only
    decides and checks (`make_run_dir` creates it later).
    """
    if not is_primary_process():
        chosen = out if out is not None else os.environ.get(RUN_DIR_ENV)
        if chosen is None:
            raise ValueError("multi-process runs started by an external launcher (torchrun, srun) need --out RUN_DIR")
        return Path(chosen)
    if out is None and int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        raise ValueError("multi-process runs started by an external launcher (torchrun, srun) need --out RUN_DIR")
    if out is None:
        run = free_folder(Path("runs") / (cfg.name or cfg.backbone.replace(":", "_").replace("/", "_")))
        if resume:
            raise ValueError("--resume needs --out RUN_DIR naming the run to continue")
    else:
        run = Path(out)
        _check_folder_path(run)
        if resume:
            if not has_checkpoint(run) and not unstarted_run(run):
                raise FileNotFoundError(f"{run}: nothing to resume (no checkpoints/last.ckpt)")
        elif run.exists() and any(run.iterdir()):
            started = " that stopped before its first checkpoint" if unstarted_run(run) else ""
            raise FileExistsError(
                f"{run} already holds a run{started}; choose another --out, or pass --resume to continue it"
            )
    if create:
        run.mkdir(parents=True, exist_ok=True)
    return run


def has_checkpoint(run: Path) -> bool:
    """True once the run saved a checkpoint to resume from."""
    return (run / "checkpoints" / "last.ckpt").is_file()


def unstarted_run(run: Path) -> bool:
    """A run folder killed before its first checkpoint (e.g. during the teacher pass): its config is there, no
    checkpoint. ``--resume`` starts it again from the beginning, as Lightning's ``ckpt_path="last"`` does."""
    return (run / "config.yaml").is_file() and not has_checkpoint(run)


def check_same_options(saved: dict[str, Any], config: dict[str, Any], where: str | Path, run: Path) -> None:
    """Refuse to continue the run in ``run`` with options (``config``) other than its ``saved`` ones, except those
    in `RESUME_MAY_CHANGE`; options the saved config predates are not compared."""
    changed = [
        f"{k}: {saved[k]!r} in the run, {v!r} now"
        for k, v in config.items()
        if k in saved and k not in RESUME_MAY_CHANGE and not _same_option(k, saved[k], v)
    ]
    if changed:
        raise ValueError(
            f"{where}: the run has other options ({'; '.join(changed)}): resume it with its own, "
            f"affectkit train --out {run} --resume (or start a new run in another --out)"
        )


def _same_option(key: str, saved: Any, now: Any) -> bool:
    if key == "data" and isinstance(saved, str) and isinstance(now, str):  # one folder, however it is spelled
        return Path(saved).resolve() == Path(now).resolve()
    return bool(saved == now)


def _check_folder_path(run: Path) -> None:
    """A file where the run folder (or a folder above it) should be is a user error, not a traceback."""
    for p in (run, *run.parents):
        if p.exists():
            if not p.is_dir():
                what = "--out" if p == run else f"the folder {p} in --out"
                raise FileExistsError(
                    f"{what} names an existing file, not a folder ({p}): choose a new folder for the run"
                )
            return


def make_run_dir(run: Path) -> list[Path]:
    """Create the run folder; returns the folders created (deepest last), for `discard_unstarted_run`."""
    created = [p for p in (*reversed(run.parents), run) if not p.exists()]
    run.mkdir(parents=True, exist_ok=True)
    return created


# What train() itself writes in a run folder; removed again when a new run fails before its first checkpoint.
RUN_FILES = ("config.yaml", "split.json", "metrics.csv", "metrics.json", "train_summary.json")


def discard_unstarted_run(run: Path, created: list[Path]) -> None:
    """Undo a new run that failed before it saved a checkpoint, so the same ``--out`` can be used again.

    Only affectkit's own files go (and the folders this run created, if left empty); a run with a checkpoint
    is kept for ``--resume``.
    """
    ckpt = run / "checkpoints"
    if has_checkpoint(run) or (ckpt / "best.ckpt").is_file():
        return
    for name in RUN_FILES:
        (run / name).unlink(missing_ok=True)
    for folder in (run, ckpt):
        for tmp in folder.glob(".*.tmp") if folder.is_dir() else ():
            tmp.unlink(missing_ok=True)
    for folder in (ckpt, *reversed(created)):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only if empty
