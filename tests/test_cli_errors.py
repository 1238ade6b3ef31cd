"""The command-line contract, checked by running the real command: a user error is one ``error: ...`` line on
stderr naming the key or file, exit code 2, no traceback and no files left behind; ``--debug`` shows the
traceback; an internal error says it is a bug (exit code 1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from affectkit.training.config import parse_set

from clitools import tiny
from test_config import CORPUS, MALFORMED_YAML  # the generated bad-input corpus

REPO = Path(__file__).resolve().parents[1]
TINY = tiny()


def affectkit(*args: str, cwd: Path, **env_extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("AFFECTKIT_DEBUG", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "affectkit.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def assert_user_error(r: subprocess.CompletedProcess, *names: str, shaped: bool = True) -> str:
    """Exit code 2 and one ``error: <what> (<where>): <how to fix>`` line (after any ``warning:`` lines);
    ``shaped=False`` for messages of modules outside this issue that have their own wording."""
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert lines and all(line.startswith(("error: ", "warning: ")) for line in lines), lines
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], lines
    assert not shaped or (" (" in errors[0] and "): " in errors[0]), errors[0]
    for name in names:
        assert name in errors[0], (name, errors[0])
    return errors[0]


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    from affectkit.data.synth import generate

    return generate(tmp_path_factory.mktemp("cli") / "faces", 48, seed=1, size=32, workers=1)


@pytest.fixture
def work(tmp_path) -> Path:
    (tmp_path / "work").mkdir()
    return tmp_path / "work"


def _yaml_flow(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()


def _set_cases() -> list[tuple[str, str]]:
    """One bad value per option as ``--set key=value``, taken in turn from the corpus values whose YAML reads back
    as that value (so the cases mix wrong types, out-of-range numbers and misspelled names)."""
    candidates: dict[str, list[str]] = {}
    for key, value in CORPUS:
        text = _yaml_flow(value)
        if value is not None and repr(parse_set([f"{key}={text}"])[key]) == repr(value):
            candidates.setdefault(key, []).append(text)
    return [(key, texts[i % len(texts)]) for i, (key, texts) in enumerate(sorted(candidates.items()))]


SET_CASES = _set_cases()
ISSUE_CASES = [  # (argv after train --data D --out OUT, name the error line must hold)
    (["--epochs", "-1"], "epochs"),
    (["--epochs", "-5"], "epochs"),
    (["--epochs", "0"], "epochs"),
    (["--image-size", "0"], "image_size"),
    (["--set", "bogus_key"], "bogus_key"),
    (["--set", "schedule=cosin"], "schedule"),
    (["--set", "class_weights=balaced"], "class_weights"),
    (["--set", "expression_loss=soft-ce"], "expression_loss"),
    (["--set", "aug_flip='no'"], "aug_flip"),
    (["--set", "cache='false'"], "cache"),
    (["--set", "num_classes=7"], "num_classes"),
    (["--set", "lr=fast"], "lr"),
    (["--set", "image_size='32'"], "image_size"),
    (["--set", "epochs=three"], "epochs"),
    (["--set", "lr=[0.1"], "--set lr=[0.1"),
    (["--set", "=3"], "--set =3"),
    (["--set", "epoch=3"], "epoch"),
    (["--set", "epochs=null"], "epochs"),
    (["--backbone", "resnet5"], "backbone"),
    (["--epochs", "x"], "--epochs"),
    (["--lr", "fast"], "--lr"),
]


def test_set_corpus_covers_every_option():
    from affectkit.training.config import FIELDS

    assert {k for k, _ in SET_CASES} == set(FIELDS)


@pytest.mark.parametrize(("argv", "name"), ISSUE_CASES, ids=[" ".join(a) for a, _ in ISSUE_CASES])
def test_train_refuses_bad_flags_with_one_line_and_leaves_nothing(faces, work, argv, name):
    r = affectkit("train", "--data", str(faces), "--out", "run", *argv, cwd=work)
    assert_user_error(r, name)
    assert list(work.iterdir()) == []


@pytest.mark.parametrize(("key", "text"), SET_CASES, ids=[f"{k}={t}"[:50] for k, t in SET_CASES])
def test_train_refuses_every_bad_option_value(faces, work, key, text):
    r = affectkit("train", "--data", str(faces), "--out", "run", "--set", f"{key}={text}", cwd=work)
    line = assert_user_error(r, key)
    assert " use " in line or "unknown config option" in line
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("case", sorted(MALFORMED_YAML))
def test_malformed_yaml_config_names_file_and_line(faces, work, tmp_path, case):
    text, line = MALFORMED_YAML[case]
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    r = affectkit("train", "--config", str(cfg), "--data", str(faces), "--out", "run", cwd=work)
    assert_user_error(r, str(cfg), f"line {line}")
    assert list(work.iterdir()) == []


def test_wrong_value_in_yaml_names_key_and_file(faces, work, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: 2\nlr: fast\n")
    r = affectkit("train", "--config", str(cfg), "--data", str(faces), "--out", "run", cwd=work)
    assert_user_error(r, f"lr in {cfg}", "'fast'", "a number > 0")


def test_missing_data_leaves_no_run_folder(work):
    r = affectkit("train", "--data", "no_such_folder", *TINY, "--out", "run", cwd=work)
    assert_user_error(r, "no_such_folder")
    assert list(work.iterdir()) == []


def test_out_naming_a_file_is_refused(faces, work):
    (work / "taken.txt").write_text("x")
    for out in ("taken.txt", "taken.txt/run"):
        r = affectkit("train", "--data", str(faces), *TINY, "--out", out, cwd=work)
        assert_user_error(r, "taken.txt", "--out")
    assert [p.name for p in work.iterdir()] == ["taken.txt"] and (work / "taken.txt").read_text() == "x"


def test_failure_after_the_run_folder_exists_removes_it(faces, work):
    """Missing weights are found only when the model is built: the new run folder is removed again, so the same
    --out can be used for the next try."""
    args = [
        "train",
        "--data",
        str(faces),
        "--backbone",
        "resnet18",
        "--weights",
        str(work.parent / "no.pth"),
        "--image-size",
        "32",
        "--epochs",
        "1",
        "--set",
        "progress=false",
        "--out",
        "runs/new",
    ]
    r = affectkit(*args, cwd=work)
    assert_user_error(r, "no.pth", shaped=False)
    assert list(work.iterdir()) == []
    (work / "kept").mkdir()  # an existing empty --out stays (empty): it was not made by the run
    r = affectkit(*args[:-1], "kept", cwd=work)
    assert_user_error(r, "no.pth", shaped=False)
    assert [p.name for p in work.iterdir()] == ["kept"] and list((work / "kept").iterdir()) == []


def test_cache_size_zero_is_refused(faces, work):
    r = affectkit("cache", str(faces), "--size", "0", "--cache-dir", "store", cwd=work)
    assert_user_error(r, "--size")
    assert list(work.iterdir()) == []


def test_manifest_with_conflicting_duplicates_strict(work):
    from PIL import Image

    Image.new("RGB", (16, 16)).save(work / "a.jpg")
    (work / "m.csv").write_text("path,expression\na.jpg,1\n./a.jpg,2\n")
    r = affectkit("data", "summary", str(work / "m.csv"), "--strict", "--no-scan", cwd=work)
    assert_user_error(r, "m.csv", "lines 2, 3")


def test_export_to_an_unknown_format_is_a_usage_error(work):
    r = affectkit("export", "ferplus", "--format", "tflite", "--out", "m.tflite", cwd=work)
    assert_user_error(r, "--format", "tflite", "onnx")
    assert list(work.iterdir()) == []


def test_train_strict_stops_at_a_bad_image_before_the_run_folder(work):
    from PIL import Image

    for i in range(4):
        Image.new("RGB", (16, 16), (60 * i, 0, 0)).save(work / f"{i}.jpg")
    (work / "junk.jpg").write_text("not an image")
    rows = "".join(f"{i}.jpg,{i % 2}\n" for i in range(4)) + "junk.jpg,1\n"
    (work / "m.csv").write_text("path,expression\n" + rows)
    r = affectkit("train", "--data", "m.csv", *tiny(), "--out", "run", "--strict", cwd=work)
    assert_user_error(r, "junk.jpg", shaped=False)
    assert "junk.jpg: not an image" in r.stderr and "junk.jpg: " + str(work) not in r.stderr  # named once
    assert not (work / "run").exists()


def test_debug_flag_and_env_show_the_traceback(faces, work):
    for extra, env in (([], {"AFFECTKIT_DEBUG": "1"}), (["--debug"], {})):
        r = affectkit(*extra, "train", "--data", str(faces), "--epochs", "-1", "--out", "run", cwd=work, **env)
        assert r.returncode != 0 and "Traceback" in r.stderr and "ConfigError" in r.stderr
    r = affectkit("train", "--data", str(faces), "--epochs", "-1", "--out", "run", "--debug", cwd=work)
    assert "Traceback" in r.stderr  # --debug after the verb works too
    assert list(work.iterdir()) == []


INTERNAL = (
    "import sys, affectkit.cli as cli\n"
    "def broken(a):\n    raise RuntimeError('boom')\n"
    "cli.cmd_report = broken\nsys.exit(cli.main(sys.argv[1:]))\n"
)


def test_internal_error_says_it_is_a_bug(work):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("AFFECTKIT_DEBUG", None)
    r = subprocess.run(
        [sys.executable, "-c", INTERNAL, "report", "x"], cwd=work, env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "bug in affectkit" in lines[0] and "RuntimeError: boom" in lines[0]
    assert "--debug" in lines[0]
    r = subprocess.run(
        [sys.executable, "-c", INTERNAL, "--debug", "report", "x"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1 and "Traceback" in r.stderr and "RuntimeError: boom" in r.stderr


def test_warnings_are_one_line_each(work):
    """Skipped rows are reported as ``warning: <file>: <reason>`` lines; the command still succeeds."""
    from PIL import Image

    for name in ("a.jpg", "b.jpg"):
        Image.new("RGB", (16, 16)).save(work / name)
    (work / "m.csv").write_text("path,expression\na.jpg,1\n./a.jpg,2\nb.jpg,3\n")
    r = affectkit("data", "summary", str(work / "m.csv"), "--no-scan", cwd=work)
    assert r.returncode == 0, r.stderr
    warned = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(warned) == 1 and warned[0].startswith("warning: ") and "lines 2, 3" in warned[0], warned
    assert "conflicting duplicate rows" in r.stdout


def test_numeric_class_folders_need_the_flag(work):
    from PIL import Image

    for rel in ("data/0/a.png", "data/3/b.png", "data/3/c.png"):
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (16, 16)).save(work / rel)
    r = affectkit("data", "summary", "data", "--no-scan", cwd=work)
    line = assert_user_error(r, "no dataset layout found", "--numeric-classes", "jaffe: ", "afew_va: ")
    assert "(data)" in line
    r = affectkit("data", "summary", "data", "--format", "image_folder", "--no-scan", cwd=work)
    assert_user_error(r, "class folder(s) 0, 3 match no expression", "--numeric-classes")
    r = affectkit(
        "data", "summary", "data", "--format", "image_folder", "--numeric-classes", "--json", "--no-scan", cwd=work
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["per_class"]["Neutral"] == 1 and summary["per_class"]["Surprise"] == 2


def test_split_by_group_without_groups_is_refused(faces, work):
    r = affectkit("train", "--data", str(faces), *TINY, "--split-by", "group", "--out", "run", cwd=work)
    assert_user_error(r, "split_by", "--split-by auto or none")
    assert list(work.iterdir()) == []


def test_train_on_posers_splits_by_poser(work):
    """JAFFE-named images: the CLI's split keeps every poser in one part and the split file says which."""
    from PIL import Image

    codes = ("NE", "HA", "SA", "SU", "AN", "DI", "FE")
    posers = ("KA", "KL", "KM", "KR", "MK", "NA", "NM", "TM", "UY", "YM")  # JAFFE's ten
    for p, poser in enumerate(posers):
        for i, code in enumerate(codes):
            Image.new("L", (32, 32), 20 * i + p).save(work / f"{poser}.{code}1.{p * 10 + i}.tiff")
    r = affectkit("train", "--data", ".", *TINY, "--out", "../run", cwd=work)
    assert r.returncode == 0, r.stderr[-2000:]
    saved = json.loads((work.parent / "run" / "split.json").read_text())
    groups = {name: set(v) for name, v in saved["groups"].items()}
    assert saved["info"]["grouped"] is True and set().union(*groups.values()) == set(posers)
    assert sum(map(len, groups.values())) == 10  # no poser in two parts
    assert all(f.split(".")[0] in groups[name] for name, files in saved["splits"].items() for f in files)
