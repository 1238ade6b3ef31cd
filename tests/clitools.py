"""Running the real `affectkit` command the way a user does: in a subprocess, in a given folder."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

AK = [sys.executable, "-m", "affectkit.cli"]
FERPLUS_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "ferplus.yaml"


def tiny(image_size: int = 32, batch_size: int | None = 16, epochs: int = 1) -> list[str]:
    """The options of a tiny CPU training run: ResNet-18 from scratch, small images, one epoch, no progress bar
    (``batch_size`` None: the default batch size)."""
    args = ["--backbone", "resnet18", "--weights", "none", "--image-size", str(image_size)]
    if batch_size is not None:
        args += ["--batch-size", str(batch_size)]
    return [*args, "--epochs", str(epochs), "--set", "progress=false"]


def train_args(
    data: object = "faces", *extra: object, out: object = "run", config: object = None, **tiny_kw
) -> list[object]:
    """``train [--config CONFIG] --data DATA`` with the options of :func:`tiny` (``tiny_kw``), ``--out OUT`` and
    ``extra``."""
    first = ["train"] if config is None else ["train", "--config", config]
    return [*first, "--data", data, *tiny(**tiny_kw), "--out", out, *extra]


def link_ferplus(ferplus_root: Path, root: Path, counts: dict[str, int]) -> Path:
    """A mini FER+ copy at ``root``: the first ``n`` label rows of each folder named in ``counts`` (folder ->
    n), the images as links, not copies (they stay in ../shared)."""
    for folder, n in counts.items():
        rows = (ferplus_root / folder / "label.csv").read_text().splitlines()[:n]
        (root / folder).mkdir(parents=True)
        (root / folder / "label.csv").write_text("\n".join(rows) + "\n")
        for r in rows:
            name = r.split(",")[0]
            (root / folder / name).symlink_to(ferplus_root / folder / name)
    return root


def ak(*args, cwd: Path, timeout: int = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``affectkit ARGS`` in ``cwd`` (``env``: extra environment variables); it must exit 0 without a
    traceback."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    res = subprocess.run([*AK, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert res.returncode == 0, f"affectkit {' '.join(map(str, args))} failed:\n{res.stdout}\n{res.stderr}"
    assert "Traceback" not in res.stderr
    return res


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_cli(model, cwd: Path, startup_s: float = 120.0):
    """``affectkit serve [MODEL] --port P`` in a subprocess (no MODEL when None: the shipped default); yields (base
    URL, its /info) once it answers."""
    port = free_port()
    proc = subprocess.Popen(
        [*AK, "serve", *([] if model is None else [str(model)]), "--port", str(port)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        end = time.time() + startup_s
        while True:
            try:
                info = json.loads(urllib.request.urlopen(base + "/info", timeout=2).read())
                break
            except OSError as e:
                if proc.poll() is not None:
                    raise AssertionError(f"affectkit serve exited with {proc.returncode}:\n{proc.stdout.read()}") from e
                if time.time() > end:
                    raise AssertionError(f"affectkit serve did not answer within {startup_s:.0f} s") from e
                time.sleep(0.5)
        yield base, info
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        assert "Traceback" not in (out or ""), out
