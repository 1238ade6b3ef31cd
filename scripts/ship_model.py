"""Ship a trained run as a ready-to-use model inside the package (weights, card, index entry).

    python scripts/ship_model.py RUN --name ferplus --version 1 --data ../shared/datasets/ferplus \
        --command "affectkit train --config configs/ferplus-shipped.yaml --data ../shared/datasets/ferplus ..."

Evaluates the written fp16 file itself on the dataset's ``val`` split (FER2013Valid for FER+) and times it through
ONNX Runtime; prints the card. Commit the three files once per model version.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from affectkit.pretrained import HERE
from affectkit.pretrained.ship import ship_model

SUMMARY = "{backbone} fine-tuned on FER+: 8 facial expressions, no valence/arousal"  # backbone: the run's


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="training run folder (its best checkpoint is shipped)")
    p.add_argument("--name", required=True)
    p.add_argument("--version", type=int, required=True)
    p.add_argument("--data", required=True, help="dataset with a val split the card's metrics are measured on")
    p.add_argument("--command", required=True, help="the training command that reproduces the run")
    p.add_argument("--summary", default=None, help=f"one line for `affectkit models` (default: {SUMMARY!r})")
    p.add_argument("--dest", default=str(HERE), help="folder for the files (default: the package's)")
    p.add_argument("--expect", default=None, help="also write the test suite's expected predictions (JSON) here")
    a = p.parse_args()
    if a.summary is None:
        a.summary = SUMMARY.format(backbone=run_backbone(a.run))
    weights = ship_model(a.run, a.name, a.data, version=a.version, summary=a.summary, command=a.command, dest=a.dest)
    print((weights.parent / f"{a.name}.md").read_text())
    if a.expect:
        record_expectations(weights, a.data, a.expect)
    print(f"wrote {weights} and its card; commit them with index.json")


def run_backbone(run: str) -> str:
    """The run's backbone as people write it: efficientnet_lite2 -> EfficientNet-Lite2."""
    from affectkit.training.config import load_config

    name = load_config(Path(run) / "config.yaml").backbone
    if name.startswith("efficientnet_lite"):
        return "EfficientNet-Lite" + name.removeprefix("efficientnet_lite")
    return name


def record_expectations(weights, data, out, n: int = 8) -> None:
    """Probabilities of the shipped file for the first ``n`` FER2013Valid faces and a fixed crop of scikit-image's
    astronaut photo (public domain), whole images as faces: what tests/test_pretrained.py checks stay stable."""
    import json
    import sys
    from pathlib import Path

    from affectkit.inference.predictor import Predictor

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from shipped_inputs import astronaut_face, ferplus_valid_faces

    predictor = Predictor.load(weights)
    inputs = {"astronaut": astronaut_face(), **ferplus_valid_faces(Path(data), n)}
    preds = predictor.predict_batch(list(inputs.values()), detect=False)
    rows = {k: {e: round(v, 5) for e, v in p[0].probabilities.items()} for k, p in zip(inputs, preds, strict=True)}
    Path(out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
