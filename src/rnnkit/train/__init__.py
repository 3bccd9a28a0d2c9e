"""Training glue (Lightning) and model files (safetensors + JSON)."""

from rnnkit.train.io import ModelFileError, load_model, read_config, save_model
from rnnkit.train.loop import DivergedError, History, TaskModule, TrainConfig, train

__all__ = [
    "DivergedError",
    "History",
    "ModelFileError",
    "TaskModule",
    "TrainConfig",
    "load_model",
    "read_config",
    "save_model",
    "train",
]
