"""affectkit: train, evaluate, compare and deploy facial affect models."""
__version__ = "0.1.0"
