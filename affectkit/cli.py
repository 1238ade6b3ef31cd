"""The `affectkit` command line: thin wrappers that parse flags and call the library functions."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from affectkit.cli_deploy import _add_export, _add_models, _add_predict, _add_serve, add_precision_flag
from affectkit.cli_errors import USER_ERRORS, parse_args, run_verb

__all__ = ["USER_ERRORS", "build_parser", "main"]  # USER_ERRORS: kept importable from here


def _primary() -> bool:
    """Only one process of a distributed run prints results."""
    from affectkit.training.run import is_primary_process

    return is_primary_process()


def cmd_synth(a):
    from affectkit.data.synth import generate

    out = generate(
        a.out, a.n, seed=a.seed, size=a.size, workers=a.workers, progress=not a.quiet, difficulty=a.difficulty
    )
    print(f"wrote {a.n} synthetic faces to {out}")


def cmd_data_summary(a):
    from affectkit.data import read_dataset
    from affectkit.data.summary import format_summary, summarize

    rec = read_dataset(
        a.path, format=a.format, strict=a.strict, label_mode=a.label_mode, numeric_classes=a.numeric_classes
    )
    s = summarize(rec, scan=not a.no_scan, strict=a.strict)
    print(json.dumps(s, indent=1, default=str) if a.json else format_summary(s))


_TRAIN_FLAGS = {
    # flag: (type, help)
    "data": (str, "dataset folder (layout detected automatically); repeat for one run over several datasets"),
    "format": (str, "force a dataset layout (ferplus, affectnet_npy, fer2013_csv, rafdb, ckplus, ...: see README)"),
    "split_by": (str, "auto (whole subjects/clips/videos per split part when the dataset names them), group, none"),
    "backbone": (str, "vgg16, resnet50, mobilenet_v2, efficientnet_lite0, timm:<name>, ..."),
    "weights": (str, "imagenet (default; offline caches and packaged weights), none, or a PATH"),
    "epochs": (int, "epochs (default 25)"),
    "batch_size": (int, "batch size (default 32)"),
    "image_size": (int, "input size in pixels (default 224)"),
    "lr": (float, "learning rate of the head (default 1e-4)"),
    "seed": (int, "random seed"),
    "name": (str, "model name in reports"),
    "label_mode": (str, "FER+: majority or distribution"),
    "devices": (str, "devices per node (int or 'auto')"),
    "num_nodes": (int, "nodes for multi-node training"),
    "strategy": (str, "training strategy, e.g. ddp"),
    "accelerator": (str, "cpu, gpu or auto"),
    "precision": (str, "auto, 32-true, bf16-mixed, 16-mixed"),
    "decode_device": (str, "build the decoded-image store on this device, e.g. cuda (nvJPEG)"),
}


def _devices(v):
    if v is None:
        return None
    return int(v) if str(v).isdigit() else v


def cmd_train(a):
    from affectkit.training.config import load_config, parse_set

    over = {k: getattr(a, k) for k in _TRAIN_FLAGS}
    over["devices"] = _devices(over["devices"])
    if over["data"] is not None and len(over["data"]) == 1:
        over["data"] = over["data"][0]  # one --data: the single-dataset run, as always
    for flag in ("deterministic", "numeric_classes", "strict"):
        if getattr(a, flag):
            over[flag] = True
    sets = parse_set(a.set)  # KEY=VALUE, values in YAML; a null value resets the option (e.g. weight_decay)
    over.update(sets)
    config = a.config
    if config is None and a.resume and a.out and (Path(a.out) / "config.yaml").is_file():
        config = Path(a.out) / "config.yaml"  # --resume alone continues the run with its own options
    cfg = load_config(config, **over)
    nulls = {k: None for k, v in sets.items() if v is None}
    if nulls:
        cfg = cfg.updated(**nulls)
    from affectkit.training.run import train  # Lightning: imported once the config is known to be valid

    run = train(cfg, out=a.out, resume=a.resume)
    if _primary():
        print(f"run folder: {run}")


def cmd_evaluate(a):
    from affectkit.evaluation import evaluate

    res = evaluate(
        a.run,
        data=a.data,
        format=a.format,
        split=a.split,
        out=a.out,
        tta=a.tta,
        batch_size=a.batch_size,
        devices=_devices(a.devices) or 1,
        strategy=a.strategy,
        num_nodes=a.num_nodes,
        progress=True,
        precision=a.precision,
        numeric_classes=a.numeric_classes or None,
        restrict_classes=a.restrict_classes,
    )
    if not _primary():
        return
    keys = ["n", "accuracy", "f1_macro", "kappa", "krippendorff_alpha", "auc_roc", "auc_pr"]
    keys += [k for k in ("accuracy_restricted", "accuracy_unrestricted") if k in res]
    print(
        json.dumps(
            {k: res.get(k) for k in keys}
            | {"valence": res.get("valence"), "arousal": res.get("arousal"), "warnings": res.get("warnings")},
            indent=1,
        )
    )
    if res.get("heads_note"):
        print(f"note: {res['heads_note']}")
    ds = res.get("dataset") or {}
    if ds.get("absent_classes"):
        print(
            f"dataset classes: {', '.join(ds['classes'])} (absent: {', '.join(ds['absent_classes'])}; "
            f"{'predictions restricted to them' if ds.get('restricted') else 'see accuracy_restricted'})"
        )
    if res.get("metrics_path"):
        print(f"metrics: {res['metrics_path']}")


def cmd_report(a):
    from affectkit.report.writer import write_report

    print(write_report(a.run, split=a.split))


def cmd_compare(a):
    from affectkit.report.compare import compare_runs, evaluations_of

    paths = compare_runs(evaluations_of(a.runs) if a.evals else a.runs, a.out, split=a.split)
    md = Path(paths["md"]) if "md" in paths else None
    if md and md.is_file():
        print(md.read_text())
    for k, p in paths.items():
        print(f"{k}: {p}")


def cmd_demo(a):
    from affectkit.demo import run_demo

    run_demo(
        out=a.out, n=a.n, size=a.size, epochs=a.epochs, backbones=a.backbones, seed=a.seed, difficulty=a.difficulty
    )


def cmd_cache(a):
    from affectkit.data import read_dataset
    from affectkit.data.cache import build_store

    if a.size < 1:
        raise ValueError(
            f"invalid image size {a.size} (--size): use the training image size in pixels, e.g. --size 224"
        )
    rec = read_dataset(a.path, format=a.format, strict=a.strict, numeric_classes=a.numeric_classes)
    store = build_store(
        rec.samples, a.size, cache_dir=a.cache_dir, strict=a.strict, progress=True, decode_device=a.decode_device
    )
    print(f"{int(store.ok.sum())}/{len(store)} images cached at {a.size}px in {store.folder}")


_NUMERIC_HELP = "image_folder: class folders named 0..7 are AffectNet ids (never guessed)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="affectkit", description="Train, evaluate, compare and deploy facial affect models."
    )
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error (or AFFECTKIT_DEBUG=1)")
    sub = p.add_subparsers(dest="verb", required=True)
    _add_synth(sub)
    _add_data(sub)
    _add_train(sub)
    _add_evaluate(sub)
    _add_report(sub)
    _add_compare(sub)
    _add_demo(sub)
    _add_predict(sub)
    _add_export(sub)
    _add_serve(sub)
    _add_models(sub)
    _add_cache(sub)
    return p


def _add_synth(sub) -> None:
    s = sub.add_parser("synth", help="write the built-in synthetic face dataset (AffectNet layout)")
    s.add_argument("--out", required=True)
    s.add_argument("-n", type=int, default=2000)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--size", type=int, default=128)
    s.add_argument("--workers", type=int, default=None)
    s.add_argument("--difficulty", type=float, default=1.0, help="nuisance level in [0, 1] (pose, blur, noise, ...)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(fn=cmd_synth)


def _add_data(sub) -> None:
    d = sub.add_parser("data", help="inspect datasets")
    dsub = d.add_subparsers(dest="data_verb", required=True)
    ds = dsub.add_parser("summary", help="images, classes, valence/arousal, exclusions")
    ds.add_argument("path")
    ds.add_argument("--format", default=None)
    ds.add_argument("--numeric-classes", action="store_true", help=_NUMERIC_HELP)
    ds.add_argument("--json", action="store_true")
    ds.add_argument("--strict", action="store_true")
    ds.add_argument("--label-mode", default="majority")
    ds.add_argument("--no-scan", action="store_true", help="skip decoding every image (faster on large sets)")
    ds.set_defaults(fn=cmd_data_summary)


def _add_train(sub) -> None:
    t = sub.add_parser("train", help="train a model; writes a run folder")
    t.add_argument("--config", default=None, help="YAML config; flags override it")
    t.add_argument("--out", default=None, help="run folder (default runs/<name>)")
    for flag, (typ, hlp) in _TRAIN_FLAGS.items():
        many = {"action": "append"} if flag == "data" else {}  # several --data: one run over several datasets
        t.add_argument("--" + flag.replace("_", "-"), dest=flag, type=typ, default=None, help=hlp, **many)
    t.add_argument("--deterministic", action="store_true")
    t.add_argument("--numeric-classes", action="store_true", help=_NUMERIC_HELP)
    t.add_argument("--strict", action="store_true", help="a bad image or annotation file is an error, not skipped")
    t.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint, with its own options (its config.yaml)",
    )
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="any config option, e.g. --set va_loss=ccc")
    t.set_defaults(fn=cmd_train)


def _add_evaluate(sub) -> None:
    e = sub.add_parser("evaluate", help="every metric of a checkpoint on a split")
    e.add_argument("run", help="run folder, .ckpt file or shipped model name (affectkit models)")
    e.add_argument("--data", default=None)
    e.add_argument("--format", default=None)
    e.add_argument("--numeric-classes", action="store_true", help=_NUMERIC_HELP)
    e.add_argument("--split", default="test", help="test (default), val, or all (every usable sample)")
    e.add_argument(
        "--restrict-classes",
        action="store_true",
        help="predict among the dataset's classes only (absent classes' probabilities zeroed)",
    )
    e.add_argument("--out", default=None, help="metrics JSON path")
    e.add_argument("--tta", action="store_true", help="average with horizontally flipped images")
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--devices", default=None)
    e.add_argument("--strategy", default="auto")
    e.add_argument("--num-nodes", type=int, default=1)
    add_precision_flag(e, "compute precision (default fp32, as predict; bf16 autocast where the CPU/GPU is fast at it)")
    e.set_defaults(fn=cmd_evaluate)


def _add_report(sub) -> None:
    r = sub.add_parser("report", help="(re)write a run's HTML/Markdown report")
    r.add_argument("run")
    r.add_argument("--split", default="test")
    r.set_defaults(fn=cmd_report)


def _add_compare(sub) -> None:
    c = sub.add_parser("compare", help="side-by-side table of several runs, or of one model on several datasets")
    c.add_argument(
        "runs",
        nargs="+",
        help="run folders, or evaluation files RUN/eval/<name>_metrics.json (columns named by dataset)",
    )
    c.add_argument(
        "--evals", action="store_true", help="one column per evaluation of each run (every dataset it was evaluated on)"
    )
    c.add_argument("--out", default="comparison")
    c.add_argument("--split", default="test")
    c.set_defaults(fn=cmd_compare)


def _add_demo(sub) -> None:
    m = sub.add_parser("demo", help="the whole study on built-in synthetic faces: VGG16 vs ResNet50")
    m.add_argument("--out", default="affectkit_demo")
    m.add_argument("-n", type=int, default=None, help="number of synthetic faces")
    m.add_argument("--size", type=int, default=None, help="image size in pixels")
    m.add_argument("--epochs", type=int, default=None)
    m.add_argument("--backbones", nargs="+", default=None)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--difficulty", type=float, default=None, help="synthetic nuisance level in [0, 1] (default 0.4)")
    m.set_defaults(fn=cmd_demo)


def _add_cache(sub) -> None:
    ca = sub.add_parser("cache", help="decode a dataset once into a memory-mapped uint8 store")
    ca.add_argument("path")
    ca.add_argument("--size", type=int, required=True)
    ca.add_argument("--format", default=None)
    ca.add_argument("--numeric-classes", action="store_true", help=_NUMERIC_HELP)
    ca.add_argument("--cache-dir", default=None)
    ca.add_argument("--strict", action="store_true")
    ca.add_argument("--decode-device", default=None, help="decode JPEGs on this device, e.g. cuda (nvJPEG)")
    ca.set_defaults(fn=cmd_cache)


def main(argv: list[str] | None = None) -> int:
    """Run one command. User errors: one ``error: ...`` line, exit 2; bugs: one line saying so, exit 1.
    ``--debug`` (anywhere on the line) or ``AFFECTKIT_DEBUG=1`` shows the traceback instead."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("AFFECTKIT_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")
    if "--debug" in argv:
        debug = True
        argv = [x for x in argv if x != "--debug"]
    args = parse_args(build_parser(), argv, debug)
    if isinstance(args, int):
        return args
    return run_verb(args.fn, args, debug)


if __name__ == "__main__":
    sys.exit(main())
