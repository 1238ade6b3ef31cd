"""The machine line benchmarks print, and bench/as_avx2.py's AVX2-only view of the CPU."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from affectkit.machine import FLAGS, cpu_model_and_flags, describe

from clitools import AK, ak, train_args

ROOT = Path(__file__).resolve().parents[1]


def test_machine_line_names_model_flags_threads_and_load():
    line = describe()
    assert line.startswith("cpu: ") and "torch threads" in line and "load" in line
    assert all(f"{f}+" in line or f"{f}-" in line for f in FLAGS)


def _need_cpuid_masking() -> set[str]:
    flags = cpu_model_and_flags()[1]
    if "cpuid_fault" not in flags:
        pytest.skip("this CPU/VM offers no CPUID faulting (no cpuid_fault in /proc/cpuinfo): as_avx2 cannot run")
    if not shutil.which("cc") and not shutil.which("gcc"):
        pytest.skip("no C compiler to build bench/cpuid_mask.c")
    return flags


def test_as_avx2_shows_commands_a_cpu_without_avx512():
    flags = _need_cpuid_masking()
    code = (
        "import torch; from affectkit.machine import describe; from affectkit.training.run import default_precision;"
        "print(torch.backends.cpu.get_cpu_capability()); print(default_precision('cpu')); print(describe())"
    )
    out = subprocess.run(
        [sys.executable, "bench/as_avx2.py", sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout.splitlines()
    assert out[0] == "AVX2"  # PyTorch's own kernels: chosen from CPUID, so AVX2 whatever this CPU has
    assert out[1] == "32-true"  # no fast bf16 on an AVX2-only CPU: auto precision falls back to fp32
    assert "avx512f-" in out[2] and "avx512_bf16-" in out[2] and "amx_tile-" in out[2]
    if "avx512f" in flags:
        assert "CPUID masked to AVX2 by bench/as_avx2.py (the CPU has avx512f" in out[2]


def test_as_avx2_without_a_command_or_with_a_missing_one_says_so():
    usage = subprocess.run([sys.executable, "bench/as_avx2.py"], cwd=ROOT, capture_output=True, text=True)
    assert usage.returncode == 2 and "Run a command as on an AVX2-only" in usage.stdout
    missing = subprocess.run(
        [sys.executable, "bench/as_avx2.py", "no-such-command-here"], cwd=ROOT, capture_output=True, text=True
    )
    # one line: the command that cannot run, or why this machine cannot mask CPUID at all
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.startswith("as_avx2: ") and len(missing.stderr.strip().splitlines()) == 1


def test_as_avx2_trains_with_data_loader_workers(tmp_path):
    """`affectkit train` under as_avx2 with worker processes: PyTorch's workers install their own SIGSEGV handler,
    which the shim chains behind its own, so a trapped CPUID in a worker is answered instead of killing it."""
    _need_cpuid_masking()
    ak("synth", "--out", "faces", "-n", 64, "--size", 32, "--quiet", cwd=tmp_path)
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "as_avx2.py"),
            *AK,
            *map(str, train_args("faces", batch_size=16)),
            "--set",
            "num_workers=2",
            "--set",
            "cache=false",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0 and "segmentation fault" not in res.stderr.lower(), res.stderr[-2000:]
    assert "precision: 32-true" in (tmp_path / "run" / "config.yaml").read_text()


def test_as_avx2_lets_a_real_crash_be_a_crash():
    """Only trapped CPUIDs are answered: a real segmentation fault still ends the command with SIGSEGV."""
    _need_cpuid_masking()
    res = subprocess.run(
        [sys.executable, "bench/as_avx2.py", sys.executable, "-c", "import ctypes; ctypes.string_at(0)"],
        cwd=ROOT,
        capture_output=True,
        timeout=120,
    )
    assert res.returncode == 128 + signal.SIGSEGV  # as a shell reports a command killed by SIGSEGV
