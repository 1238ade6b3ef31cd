"""Run a command as on an AVX2-only x86-64 CPU, for every library in it: PyTorch, oneDNN, MKL and ONNX Runtime.

    python bench/as_avx2.py bench/quantize.py RUN --data ../shared/datasets/ferplus   # a .py: this Python runs it
    python bench/as_avx2.py affectkit demo

The kernel-limiting variables (``affectkit.machine.AVX2_ONLY``) restrict PyTorch only; ONNX Runtime reads the CPU
itself. This runner builds ``bench/cpuid_mask.c`` with the system C compiler and preloads it, so that the command
sees a CPU without AVX-512, VNNI, bf16 or AMX in CPUID (Linux CPUID faulting, the ``cpuid_fault`` flag). Kernel
speeds are those of this CPU's cores running AVX2 code; an older AVX2 CPU may still be slower per core. The machine
line of every benchmark says so (``CPUID masked to AVX2``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from affectkit.data.cache import default_cache_dir
from affectkit.machine import CPUID_MASK_ENV, cpu_model_and_flags

SOURCE = Path(__file__).with_name("cpuid_mask.c")


def build_shim() -> Path:
    """The compiled shim, built once per source version into affectkit's cache (``AFFECTKIT_CACHE``)."""
    if "cpuid_fault" not in cpu_model_and_flags()[1]:
        sys.exit(
            "as_avx2: this CPU or VM offers no CPUID faulting (no cpuid_fault in /proc/cpuinfo): use the "
            "kernel-limiting variables of affectkit.machine.AVX2_ONLY instead (PyTorch only)"
        )
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        sys.exit("as_avx2: no C compiler found: install one (Debian: apt install gcc) or set CC")
    code = SOURCE.read_bytes()
    out = default_cache_dir()
    lib = out / f"cpuid_mask-{hashlib.sha256(code).hexdigest()[:12]}.so"
    if not lib.is_file():
        out.mkdir(parents=True, exist_ok=True)
        tmp = lib.with_suffix(f".{os.getpid()}.tmp")
        built = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(tmp), str(SOURCE)], capture_output=True)
        if built.returncode:
            sys.exit(f"as_avx2: {cc} could not build {SOURCE}: {built.stderr.decode().strip()[:300]}")
        tmp.replace(lib)
    return lib


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    lib = build_shim()
    env = dict(os.environ)
    env["LD_PRELOAD"] = " ".join(filter(None, [str(lib), env.get("LD_PRELOAD", "")]))
    env[CPUID_MASK_ENV] = "avx2"
    if argv[0].endswith(".py"):
        argv = [sys.executable, *argv]
    try:
        code = subprocess.run(argv, env=env).returncode
    except OSError as err:
        sys.exit(f"as_avx2: cannot run {argv[0]}: {err.strerror}")
    return 128 - code if code < 0 else code  # killed by a signal: as a shell reports it (SIGSEGV: 139)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
