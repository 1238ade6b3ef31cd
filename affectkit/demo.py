"""`affectkit demo`: the whole classic study on built-in synthetic faces, end to end.

Generate the data, train VGG16 and ResNet50 with the same CPU-sized recipe, evaluate both on the held-out
test split, write each run's report and the side-by-side comparison.
"""

from __future__ import annotations

import json
import os
import time
from importlib import resources
from pathlib import Path
from typing import Any

DEMO_N = 3000
DEMO_SIZE = 48
# Moderate nuisance: pose, scale, backgrounds, blur, noise and occlusion stay, at 40% of the full range, so
# two deep networks trained from scratch learn the cues within a CPU-minutes budget.
DEMO_DIFFICULTY = 0.4
# VGG16 with batch normalisation: plain VGG16 from random init sits at chance for many epochs (no BN, 13
# stacked convs); the BN variant is the same architecture and trains from scratch in minutes.
DEMO_BACKBONES = ("vgg16_bn", "resnet50")
# What "really learned" means for the demo (and the README's claim): below these, the run is flagged.
TARGETS = {"accuracy": 0.80, "valence_ccc": 0.70, "arousal_ccc": 0.70}


def step_rates(cfg, steps: int = 3, compile: bool = False) -> tuple[float, float]:
    """(training, inference) images/s of ``cfg``'s model on this machine: a few real optimisation steps and
    forward passes on random inputs, with the precision and memory layout training will use. ``compile``: through
    ``torch.compile`` (the first step, which compiles, is not timed)."""
    import contextlib

    import torch

    from affectkit.training.module import AffectModule
    from affectkit.training.optim import build_optimizer
    from affectkit.training.run import resolve_config

    cfg = resolve_config(cfg)
    model = AffectModule(cfg.to_dict()).model
    opt = build_optimizer(model, cfg)  # the step training takes (fused where it can be)
    run = torch.compile(model) if compile else model
    x = torch.randn(cfg.batch_size, 3, cfg.image_size, cfg.image_size)
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    bf16 = cfg.precision.startswith("bf16")

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def train_step():
        with autocast():
            logits, va = run(x)
        (logits.float().logsumexp(1).mean() + va.float().square().mean()).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def infer_step():
        with torch.no_grad(), autocast():
            run(x)

    rates = []
    for step in (train_step, infer_step):
        step()  # first call: kernel selection and allocation
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(steps * cfg.batch_size / (time.perf_counter() - t0))
    return rates[0], rates[1]


def estimate_seconds(
    rates: dict[str, tuple[float, float]], n: int, epochs: int, test_size: float, val_size: float
) -> float:
    """Training (each epoch: the training part forward and backward, the validation part forward) plus the
    test evaluation, for every model, from ``step_rates``; reports and start-up add a few seconds each."""
    n_test = n * test_size
    n_val = (n - n_test) * val_size
    n_train = n - n_test - n_val
    return sum(epochs * (n_train / tr + n_val / inf) + n_test / inf + 10.0 for tr, inf in rates.values())


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"


def config_path(name: str) -> Path:
    return Path(str(resources.files("affectkit") / "configs" / f"{name}.yaml"))


def run_demo(
    out: str | Path = "affectkit_demo",
    n: int | None = None,
    size: int | None = None,
    epochs: int | None = None,
    backbones=None,
    seed: int = 0,
    difficulty: float | None = None,
    verbose: bool = True,
) -> dict:
    from affectkit.data.synth import generate
    from affectkit.evaluation import evaluate
    from affectkit.machine import describe
    from affectkit.report.compare import compare_runs
    from affectkit.report.writer import write_report
    from affectkit.training.config import load_config
    from affectkit.training.run import free_folder, train

    say = print if verbose else (lambda *a, **k: None)
    requested = Path(out)
    out = free_folder(requested)
    if out != requested:
        say(f"{requested} is taken; writing to {out}")
    n = n or DEMO_N
    size = size or DEMO_SIZE
    t0 = time.time()
    data = out / "data"
    difficulty = DEMO_DIFFICULTY if difficulty is None else difficulty
    say(f"[1/4] generating {n} synthetic faces at {size}px (difficulty {difficulty}) -> {data}")
    generate(data, n, seed=seed, size=size, difficulty=difficulty)
    backbones = list(backbones or DEMO_BACKBONES)
    cfgs = {
        bb: load_config(
            config_path("demo"), data=str(data), backbone=bb, name=bb, image_size=size, epochs=epochs, seed=seed
        )
        for bb in backbones
    }
    estimate = _announce_estimate(cfgs, n, time.time() - t0, say)
    runs, results = [], {}
    for i, bb in enumerate(backbones):
        say(f"[2/4] training {bb} ({i + 1}/{len(backbones)})")
        run = train(cfgs[bb], out=out / "runs" / bb.replace(":", "_"))
        say(f"[3/4] evaluating {bb} on the held-out test split")
        results[bb] = evaluate(run, split="test")
        write_report(run)
        runs.append(run)
    say("[4/4] comparing")
    paths = compare_runs(runs, out / "comparison")
    summary: dict[str, Any] = {
        "out": str(out),
        "wall_time_s": round(time.time() - t0, 1),
        "estimated_s": round(estimate, 1),
        "machine": describe(),
        "models": {bb: _figures(r) for bb, r in results.items()},
    }
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=1))
    _say_results(summary, paths, runs, out, say)
    return summary


def _say_results(summary: dict[str, Any], paths, runs: list, out: Path, say) -> None:
    """The comparison table, the verdicts, where the reports are and how long the demo took."""
    from affectkit.machine import describe

    md = Path(paths["md"]) if isinstance(paths, dict) and "md" in paths else None
    if md is not None and md.is_file():
        say("\n" + md.read_text())
    _say_verdicts(summary, say)
    say(f"reports: {', '.join(str(r / 'report' / 'index.html') for r in runs)}")
    say(f"comparison: {out / 'comparison'}")
    say(f"the demo took {minutes(summary['wall_time_s'])} on this machine ({describe()})")


def _announce_estimate(cfgs: dict, n: int, elapsed: float, say) -> float:
    """Measure each model's speed here, say the expected total time and return it (seconds; ``elapsed``: spent
    so far)."""
    from affectkit.training.run import default_precision

    rates = {bb: step_rates(cfg) for bb, cfg in cfgs.items()}
    first = next(iter(cfgs.values()))
    total = elapsed + estimate_seconds(rates, n, first.epochs, first.test_size, first.val_size)
    precision = first.precision if first.precision != "auto" else default_precision(first.accelerator)
    speeds = ", ".join(f"{bb} at {r[0]:.0f} images/s" for bb, r in rates.items())
    busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    load = f"; load {busy:.1f}: other jobs are slowing it" if busy > 2.5 else ""
    say(f"      this CPU trains {speeds} ({precision}{load}): the demo should take about {minutes(total)} in all")
    return total


def _figures(r: dict) -> dict[str, Any]:
    """The demo's headline figures of one evaluation, and whether they reach ``TARGETS``."""
    figures = {
        "accuracy": r.get("accuracy"),
        "f1_macro": r.get("f1_macro"),
        "valence_ccc": (r.get("valence") or {}).get("ccc"),
        "arousal_ccc": (r.get("arousal") or {}).get("ccc"),
        "n": r.get("n"),
        "warnings": r.get("warnings", []),
    }
    figures["learned"] = all(figures[k] is not None and figures[k] >= v for k, v in TARGETS.items())
    return figures


def _say_verdicts(summary: dict[str, Any], say) -> None:
    for bb, f in summary["models"].items():
        verdict = "learned" if f["learned"] else "DID NOT REACH TARGETS " + json.dumps(TARGETS)
        say(
            f"{bb}: accuracy {f['accuracy']:.3f}  valence CCC {f['valence_ccc']:.3f}  "
            f"arousal CCC {f['arousal_ccc']:.3f}  -> {verdict}"
        )
        for w in f["warnings"]:
            say(f"  WARNING {bb}: {w}")
