"""The `affectkit` verbs that use a trained model: predict, export, serve, models.

Each takes a model as a ``.ckpt``, a run folder, an ``.onnx`` file or a shipped model's name (``affectkit
models``); predict and serve use the shipped default model when none is given.
"""

from __future__ import annotations

import json
import sys

from affectkit.extras import require

_MODEL_HELP = ".ckpt, run folder, .onnx or shipped model name (affectkit models)"


def cmd_predict(a):
    from affectkit.inference import run_predict
    from affectkit.io import split_model_argument

    model, inputs = split_model_argument(a.model, a.inputs)
    rows = run_predict(
        model,
        inputs,
        out=a.out,
        annotate=a.annotate,
        detect=not a.no_detect,
        backend=a.backend,
        every_n=a.every_n,
        batch_size=a.batch_size,
        threshold=a.threshold,
        tta=a.tta,
        precision=a.precision,
    )
    if not a.out:
        for r in rows:
            print(json.dumps(r, default=str))
    if rows and all(r["status"].startswith("error") for r in rows):
        # the rows are written all the same; a script must still be able to tell that nothing was predicted
        where = f"; their error rows are in {a.out}" if a.out else ""
        raise ValueError(f"no input could be read ({len(rows)} tried, see the warnings above){where}")


def cmd_export(a):
    from affectkit.inference import export_onnx

    out = export_onnx(
        a.checkpoint,
        a.out,
        opset=a.opset,
        quantize=a.quantize,
        calibration=a.calibration,
        calibration_size=a.calibration_size,
    )
    print(out)  # stdout: the file alone, for scripts
    if a.quantize:
        from affectkit.inference.export import read_onnx_metadata

        check = read_onnx_metadata(out).get("int8_check")
        print(_int8_summary(check), file=sys.stderr)


def _int8_summary(check: dict | None) -> str:
    if not check:
        return "int8 not compared with fp32: the data has no held-out (val or test) faces"
    line = (
        f"int8 vs fp32 on {check['n']} held-out ({check['split']}) faces: same expression on "
        f"{check['same_expression']:.1%}, largest probability change {check['max_prob_change']:.3f}"
    )
    if "max_va_change" in check:
        line += f", largest valence/arousal change {check['max_va_change']:.3f}"
    if "accuracy_fp32" in check:
        line += f"; accuracy {check['accuracy_fp32']:.3f} fp32, {check['accuracy_int8']:.3f} int8"
    return line


def cmd_serve(a):
    require("serve", "affectkit serve")
    from affectkit.inference.server import serve

    serve(
        a.checkpoint,
        host=a.host,
        port=a.port,
        max_upload_mb=a.max_upload_mb,
        max_concurrent=a.max_concurrent,
        read_timeout=a.read_timeout,
        backend=a.backend,
    )


def cmd_models(a):
    from affectkit import pretrained

    if a.card:
        print(pretrained.card_text(a.card), end="")
        return
    models = pretrained.list_models()
    if a.json:
        print(json.dumps([m.__dict__ for m in models], indent=1))
        return
    if not models:
        print("no shipped models in this installation")
    for m in models:
        default = " (default)" if m.name == pretrained.DEFAULT else ""
        figures = ", ".join(f"{k} {v:.3f}" for k, v in m.metrics.items())
        print(f"{m.name} v{m.version}{default}: {m.summary}")
        print(f"    {figures}; card: affectkit models --card {m.name}")


def add_precision_flag(parser, help: str) -> None:
    """``--precision fp32|bf16``: evaluate and predict compute the same way unless told otherwise."""
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help=help)


def _add_predict(sub) -> None:
    pr = sub.add_parser(
        "predict",
        help="expressions and valence/arousal for faces in images and videos",
        usage="affectkit predict [options] [MODEL] INPUT [INPUT ...]",
    )
    pr.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help=f"image files, folders, globs, video files; may start with the model ({_MODEL_HELP}); "
        "no model: the shipped default",
    )
    pr.add_argument("--model", default=None, help=f"the model ({_MODEL_HELP}); default: the shipped model")
    pr.add_argument("--out", default=None, help="results.csv or results.json")
    pr.add_argument("--annotate", default=None, help="folder for annotated copies")
    pr.add_argument("--no-detect", action="store_true", help="inputs are already face crops")
    pr.add_argument("--backend", default="torch", choices=["torch", "onnx"])
    pr.add_argument("--every-n", type=int, default=10, help="video: every Nth frame")
    pr.add_argument("--batch-size", type=int, default=32)
    pr.add_argument("--threshold", type=float, default=0.9, help="face detection confidence")
    pr.add_argument("--tta", action="store_true")
    add_precision_flag(pr, "torch backend compute precision (default fp32, as evaluate)")
    pr.set_defaults(fn=cmd_predict)


def _add_export(sub) -> None:
    x = sub.add_parser("export", help="export a checkpoint for portable inference")
    x.add_argument("checkpoint", help=".ckpt, run folder or shipped model name (affectkit models)")
    x.add_argument("--format", default="onnx", choices=["onnx"], help="onnx (the only format)")
    x.add_argument("--out", default="model.onnx")
    x.add_argument("--opset", type=int, default=17)
    x.add_argument(
        "--quantize",
        choices=["int8"],
        default=None,
        help="int8: ONNX Runtime static quantization, calibrated on training images (smaller, faster), then "
        "compared with the float model on held-out images (warns when many answers change)",
    )
    x.add_argument(
        "--calibration",
        default=None,
        metavar="DATA",
        help="dataset to calibrate int8 on and compare it with (default: the run's own images)",
    )
    x.add_argument("--calibration-size", type=int, default=256, help="calibration images (default 256)")
    x.set_defaults(fn=cmd_export)


def _add_serve(sub) -> None:
    sv = sub.add_parser("serve", help="web demo and JSON API")
    sv.add_argument("checkpoint", nargs="?", default=None, help=f"{_MODEL_HELP}; default: the shipped model")
    sv.add_argument("--backend", default=None, choices=["torch", "onnx"], help="default: by the model file")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--max-upload-mb", type=float, default=10)
    sv.add_argument("--max-concurrent", type=int, default=4, help="predictions at once; more get 503")
    sv.add_argument("--read-timeout", type=float, default=30.0, help="seconds a client may stall its upload")
    sv.set_defaults(fn=cmd_serve)


def _add_models(sub) -> None:
    m = sub.add_parser("models", help="the models that ship with affectkit, ready to use")
    m.add_argument("--card", default=None, metavar="NAME", help="print a model's card (Markdown)")
    m.add_argument("--json", action="store_true")
    m.set_defaults(fn=cmd_models)
