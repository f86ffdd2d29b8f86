"""Airline passengers (Box & Jenkins 1976), a tiny classic: 144 months, forecast 12 from 24.

    python -m grux.train --config configs/airline.py --workdir runs/airline

Argument: ``[<decoder>[,<likelihood>]]`` as in configs/ett.py. Split (no standard one
exists): train 1949-1957 (108 months), validation 1958, test 1959-1960; standardised with
the train months' mean and std; test windows start in 1958 (look-back 24, horizon 12, 13
test windows, 1 validation window). MSE/MAE on the standardised scale, sMAPE and MASE
(m = 12) on passengers. The series grows steadily, so test values lie far above the training
range; ``model.instance_norm`` (on here) standardises every look-back by its own mean and
std, which the GRU needs to cope with that (without it, test MSE ~1.37, no better than naive).

Measured 2026-11-26 on the 2-core CPU *under load* (niced), 29 s wall: test MSE 0.111
(standardised), sMAPE 4.97, MASE 0.77, OWA 0.63; on the same 13 windows naive 1.357 / 17.31 /
2.66, seasonal naive 0.393 / 12.23 / 1.76, linear 0.067 / 3.79 / 0.62 (MSE / sMAPE / MASE),
Naive2 sMAPE 7.94, MASE 1.22. The least-squares linear baseline wins on this tiny series.
"""
from grux.train.config import base_config


def get_config(arg: str = "direct,none"):
    parts = (arg or "direct").split(",")
    config = base_config("forecast")
    config.task.dataset = "airline_passengers"
    config.task.lookback = 24
    config.task.horizon = 12
    config.task.seasonality = 12
    config.model.cell = "gru"
    config.model.hidden = 32
    config.model.instance_norm = True       # each look-back on its own scale: trend-proof
    config.model.decoder = parts[0] or "direct"
    config.model.likelihood = parts[1] if len(parts) > 1 else "none"
    config.batch_size = 16
    config.eval.batch_size = 16
    config.num_train_steps = 600
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 3e-3
    config.eval.every_steps = 50
    config.eval.metric = "validation/mse"
    config.checkpoint.every_steps = 200
    config.log.every_steps = 50
    return config
