"""One line about the machine a figure was measured on: CPU model, the flags that decide speed, threads, load.

Every benchmark and the demo print it next to their timings: the same code is several times faster on a CPU
with AVX-512 and fast bf16 (and AMX) than on one with AVX2 only. Kernel-restricting variables that emulate an
older CPU (oneDNN's ``ONEDNN_MAX_CPU_ISA``, MKL's ``MKL_ENABLE_INSTRUCTIONS``, PyTorch's own
``ATEN_CPU_CAPABILITY``) are shown when set, and so is a CPUID mask (``bench/as_avx2.py``, which emulates an
AVX2-only CPU for ONNX Runtime too): the flags are then those the process sees.
"""

from __future__ import annotations

import os
import platform

FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")
ISA_LIMITS = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY")
# An AVX2-only CPU on any x86 machine: set before torch loads (oneDNN convolutions, MKL, PyTorch's own kernels).
AVX2_ONLY = {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
CPUID_MASK_ENV = "AFFECTKIT_CPUID_MASK"  # set by bench/as_avx2.py next to its LD_PRELOAD shim


def cpu_model_and_flags() -> tuple[str, set[str]]:
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
    return model, flags


def describe() -> str:
    """``cpu: MODEL (N cores; avx2+ avx512f- ...); torch threads T; load L`` (+ any ISA limit in force)."""
    model, flags = cpu_model_and_flags()
    try:
        import torch

        threads = f"torch threads {torch.get_num_threads()}"
    except ImportError:
        threads = "no torch"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    masked = os.environ.get(CPUID_MASK_ENV) == "avx2" and "cpuid_mask" in os.environ.get("LD_PRELOAD", "")
    seen = {f for f in flags if not f.startswith(("avx512", "amx"))} if masked else flags
    have = " ".join(f"{f}{'+' if f in seen else '-'}" for f in FLAGS)
    limits = [f"{k}={os.environ[k]}" for k in ISA_LIMITS if os.environ.get(k)]
    limited = f"; kernels limited by {' '.join(limits)}" if limits else ""
    if masked:
        real = " ".join(f for f in FLAGS if f in flags and f not in seen) or "nothing more"
        limited += f"; CPUID masked to AVX2 by bench/as_avx2.py (the CPU has {real})"
    return f"cpu: {model} ({os.cpu_count()} cores; {have}){limited}; {threads}; load {load:.2f}"


if __name__ == "__main__":
    print(describe())
