"""Training: ``TrainConfig`` + ``train()``, W snapshots, and the task data."""

from gmlp_core.train.snapshots import load_spatial_snapshots
from gmlp_core.train.trainer import TrainConfig, TrainResult, demo_lr, lr_at, train

__all__ = ["TrainConfig", "TrainResult", "demo_lr", "load_spatial_snapshots", "lr_at", "train"]
