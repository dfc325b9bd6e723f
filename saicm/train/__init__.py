"""Training: datasets (image folder + optional masks), RD losses, the trainer."""

from .losses import DISTORTIONS, rd_loss, register_distortion
from .trainer import DEFAULT_LAMBDAS, TrainConfig, export_checkpoint, train

__all__ = ["DEFAULT_LAMBDAS", "DISTORTIONS", "TrainConfig", "export_checkpoint", "rd_loss", "register_distortion", "train"]
