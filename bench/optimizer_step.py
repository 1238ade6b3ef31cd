"""Where a demo training step goes: forward + backward against the optimiser step, PyTorch's default AdamW
step (multi-tensor) against the fused one that ``build_optimizer`` picks where it can.

    python bench/optimizer_step.py                         # this CPU as it is, fp32
    ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2 python bench/optimizer_step.py

Each figure is the mean over ``--steps`` steps after one warm-up step, on in-memory batches at the demo's size;
the two optimisers alternate ``--repeats`` times, since a shared machine's speed drifts between runs.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backbones", default="vgg16_bn,resnet50")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    import torch

    from affectkit.demo import DEMO_SIZE, config_path
    from affectkit.machine import describe
    from affectkit.training.config import load_config
    from affectkit.training.module import AffectModule
    from affectkit.training.optim import build_optimizer

    print(describe())
    print(f"fp32, batch {args.batch_size}, {DEMO_SIZE} px; ms per step, mean of {args.steps}")
    for bb in args.backbones.split(","):
        cfg = load_config(config_path("demo"), data="-", backbone=bb, precision="32-true")
        model = AffectModule(cfg.to_dict()).model  # channels_last as training sets it
        x = torch.randn(args.batch_size, 3, DEMO_SIZE, DEMO_SIZE).contiguous(memory_format=torch.channels_last)
        n = sum(p.numel() for p in model.parameters()) / 1e6
        for _ in range(args.repeats):
            for fused in (False, True):
                opt = build_optimizer(model, cfg, fused=fused)  # the demo's AdamW and parameter groups
                model_ms, step_ms = 0.0, 0.0
                for i in range(args.steps + 1):
                    t0 = time.perf_counter()
                    logits, va = model(x)
                    (logits.logsumexp(1).mean() + va.square().mean()).backward()
                    t1 = time.perf_counter()
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                    if i:  # the first step allocates the optimiser state
                        model_ms += (t1 - t0) * 1000 / args.steps
                        step_ms += (time.perf_counter() - t1) * 1000 / args.steps
                kind = "fused  " if fused else "default"
                print(f"{bb:10s} {n:5.1f}M params, AdamW {kind}: forward+backward {model_ms:6.0f}, step {step_ms:5.1f}")


if __name__ == "__main__":
    main()
