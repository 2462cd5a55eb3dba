"""Training: config.py (TrainConfig), registry.py (algorithms), build.py (config -> parts), loop.py (train)."""

from torchrl_vd.train.config import TrainConfig
from torchrl_vd.train.loop import TrainResult, evaluate, train
from torchrl_vd.train.registry import AlgoParts, algorithms, register_algo

__all__ = ["AlgoParts", "TrainConfig", "TrainResult", "algorithms", "evaluate", "register_algo", "train"]
