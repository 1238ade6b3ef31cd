"""`affectkit demo` as a user runs it (shrunk): the estimate after its first steps, the time and CPU at the end."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from affectkit.demo import estimate_seconds
from affectkit.machine import AVX2_ONLY

from clitools import ak


def test_estimate_counts_training_validation_and_test_images():
    # 1000 faces, 20 % test, 10 % of the rest validation: 720 train, 80 val, 200 test
    rates = {"a": (72.0, 40.0)}  # training, inference images/s
    assert estimate_seconds(rates, 1000, 2, 0.2, 0.1) == pytest.approx(2 * (10 + 2) + 5 + 10)
    assert estimate_seconds({**rates, "b": (36.0, 20.0)}, 1000, 2, 0.2, 0.1) == pytest.approx(39 + 2 * 24 + 10 + 10)


def test_demo_prints_its_estimate_time_and_cpu(tmp_path):
    res = ak("demo", "-n", 160, "--size", 32, "--epochs", 1, "--backbones", "resnet18", "--out", "d", cwd=tmp_path)
    out = res.stdout
    est = re.search(
        r"this CPU trains resnet18 at (\d+) images/s \((bf16-mixed|32-true)(; load [\d.]+: other jobs are slowing "
        r"it)?\): the demo should take about (\d+) min (\d+) s in all",
        out,
    )
    assert est, out
    assert out.index("should take about") < out.index("[2/4] training resnet18")  # said before training starts
    assert re.search(r"the demo took \d+ min \d+ s on this machine \(cpu: .*avx2[+-].*load", out), out
    summary = json.loads((tmp_path / "d" / "demo_summary.json").read_text())
    assert summary["estimated_s"] > 0 and summary["wall_time_s"] > 0 and summary["machine"].startswith("cpu: ")
    assert (tmp_path / "d" / "runs" / "resnet18" / "report" / "index.html").is_file()


def test_demo_on_an_avx2_only_cpu_trains_in_fp32_and_says_so(tmp_path):
    # The README's way to reproduce AVX2-only timings on any x86 CPU: PyTorch's kernels limited by environment.
    args = ("demo", "-n", 120, "--size", 32, "--epochs", 1, "--backbones", "resnet18", "--out", "d")
    out = ak(*args, cwd=tmp_path, env=AVX2_ONLY).stdout
    assert re.search(r"this CPU trains resnet18 at \d+ images/s \(32-true", out), out  # no fast bf16 under AVX2
    limits = "kernels limited by ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2"
    assert limits in out.splitlines()[-1], out
    summary = json.loads((tmp_path / "d" / "demo_summary.json").read_text())
    assert limits in summary["machine"]
    saved = yaml.safe_load((tmp_path / "d" / "runs" / "resnet18" / "config.yaml").read_text())
    assert saved["precision"] == "32-true"
