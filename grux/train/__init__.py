"""The training system: one config-driven, data-parallel trainer for every task.

``train_and_evaluate(config, workdir)`` is the library entry point; ``python -m grux.train``
(``grux-train``) the command line.
"""
from grux.train.config import ConfigError, base_config, validate
from grux.train.trainer import NonFiniteLossError, train_and_evaluate

__all__ = ["ConfigError", "NonFiniteLossError", "base_config", "train_and_evaluate",
           "validate"]
