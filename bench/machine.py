"""One line about the machine a figure was measured on: CPU model, the flags that decide speed, threads, load."""
from __future__ import annotations

import os
import platform

FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def describe() -> str:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("", platform.machine(), platform.processor()):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    try:
        import torch

        threads = f"torch threads {torch.get_num_threads()}"
    except ImportError:
        threads = "no torch"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    have = " ".join(f"{f}{'+' if f in flags else '-'}" for f in FLAGS)
    return f"cpu: {model} ({os.cpu_count()} cores; {have}); {threads}; load {load:.2f}"


if __name__ == "__main__":
    print(describe())
