"""Delayed echo on an endless bit stream: truncated BPTT with the state carried across windows.

    python -m grux.train --config configs/echo.py --workdir runs/echo
    python -m grux.train --config configs/echo.py --workdir runs/echo-stateless \
        --config.task.stateful=False

The target is the input 5 steps back; batches are consecutive 20-step windows of 32 streams.
Carrying the GRU state across windows makes every target predictable (accuracy → 1); resetting
it each window leaves the first 5 of 20 targets at chance, capping accuracy near 0.875.
Measured on the 2-core CPU: see README (Training).
"""
from grux.train.config import base_config


def get_config():
    config = base_config("echo")
    config.task.delay = 5
    config.task.window = 20
    config.model.hidden = 32
    config.batch_size = 32
    config.num_train_steps = 1000
    config.optimizer.learning_rate = 3e-3
    config.eval.every_steps = 250
    config.eval.metric = "validation/accuracy"
    config.eval.mode = "max"
    config.checkpoint.every_steps = 250
    config.log.every_steps = 50
    return config
