"""The copy task: recall 10 symbols after a delay of 50 blank steps (no data files).

    python -m grux.train --config configs/copy.py --workdir runs/copy
    python -m grux.train --config configs/copy.py --workdir runs/copy-tanh --config.model.cell=tanh

GRU 128, Adam 2e-3, batch 64, 3000 steps. Memoryless baseline (blanks, then random symbols):
10·ln 8 / 70 = 0.2971 nats per step, copy accuracy 1/8 = 0.125.
Measured on the 2-core CPU (one other job running): GRU test copy accuracy 0.755, loss 0.0839
(still improving at step 3000), 2m43s; tanh-RNN 0.124 / 0.2979 (chance: it learns nothing), 41s.
"""
from grux.train.config import base_config


def get_config():
    config = base_config("copy")
    config.num_train_steps = 3000
    config.batch_size = 64
    config.optimizer.learning_rate = 2e-3
    config.eval.every_steps = 500
    config.eval.metric = "validation/copy_accuracy"
    config.eval.mode = "max"
    config.checkpoint.every_steps = 500
    config.log.every_steps = 100
    return config
