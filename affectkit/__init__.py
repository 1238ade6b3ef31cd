"""affectkit: train, evaluate, compare and deploy facial affect models."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy so `import affectkit` stays light (no torch); `from affectkit import Predictor` still works.
    if name == "Predictor":
        from affectkit.inference.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'affectkit' has no attribute {name!r}")
