"""ETT forecasting, Informer protocol (Zhou et al. 2021): look-back 96, multivariate (7 channels).

    python -m grux.train --config configs/ett.py:etth1,24 --workdir runs/etth1-24
    python -m grux.train --config configs/ett.py:etth1,24,autoregressive --workdir runs/etth1-24-ar
    python -m grux.train --config configs/ett.py:etth1,24,direct,gaussian --workdir runs/etth1-24-g
    python scripts/plot_forecast.py --workdir runs/etth1-24 --channel OT --out etth1-24.png

Argument: ``<dataset>,<horizon>[,<decoder>[,<likelihood>]]`` with dataset in etth1 | etth2 |
ettm1 | ettm2, horizon e.g. 24 | 48 | 168 | 336 | 720, decoder direct (default) |
autoregressive, likelihood none (default, MSE loss) | gaussian (NLL loss; CRPS reported).
Splits 12/4/4 months, standardised with train-split statistics, MSE/MAE on that scale over
all validation/test windows (the look-back of the first ones reaches into the previous
split). One GRU layer of 64 units, Adam 1e-3, batch 32, evaluation every 250 steps, best
checkpoint by validation MSE, early stopping after 4 evaluations without improvement.
The summary prints the test numbers of the model and of the naive, seasonal naive (24 h)
and linear (least squares on the look-back) baselines on the same windows.

Measured 2026-11-26 on the 2-core CPU *under load* (other experiments running, these runs
niced), ETTh1, ``configs/ett.py:etth1,H`` as is; test MSE / MAE at the best validation MSE:

    H     GRU (direct)    naive           seasonal naive  linear          training time
    24    0.650 / 0.580   1.222 / 0.671   0.424 / 0.389   0.309 / 0.351   39 s
    48    0.652 / 0.585   1.268 / 0.695   0.465 / 0.407   0.341 / 0.370   33 s
    168   0.949 / 0.729   1.325 / 0.730   0.571 / 0.463   0.421 / 0.417   31 s
    336   1.055 / 0.795   1.330 / 0.746   0.650 / 0.501   0.475 / 0.451   32 s
    720   1.062 / 0.819   1.335 / 0.755   0.655 / 0.514   0.500 / 0.497   8m31s (load ~10)

Same day, beside one niced job, test MSE / MAE of the other heads (``,autoregressive``;
``--config.model.instance_norm=True``; ``,direct,gaussian`` with its CRPS and 80 % coverage):

    H     autoregressive  + instance norm  gaussian (mean)  CRPS   coverage 80 %
    24    0.812 / 0.612   0.393 / 0.417    0.535 / 0.496    0.367  0.708
    48    0.894 / 0.663   0.447 / 0.449    0.688 / 0.580    0.430  0.735
    168   1.293 / 0.823   0.484 / 0.468    0.893 / 0.735    0.532  0.625
    336   1.334 / 0.806   0.523 / 0.489    0.951 / 0.754    0.555  0.572
    720   1.402 / 0.861   0.548 / 0.517    1.082 / 0.823    0.623  0.476

Informer (Table 2, multivariate) quotes LSTMa test MSE 0.650 / 0.702 / 1.212 / 1.424 / 1.960
for H = 24 / 48 / 168 / 336 / 720 (quoted from the issue, not verified).
"""
from grux.train.config import base_config

DATASETS = ("etth1", "etth2", "ettm1", "ettm2")


def get_config(arg: str = "etth1,24"):
    parts = arg.split(",")
    dataset = parts[0]
    horizon = int(parts[1]) if len(parts) > 1 else 24
    decoder = parts[2] if len(parts) > 2 else "direct"
    likelihood = parts[3] if len(parts) > 3 else "none"
    if dataset not in DATASETS or len(parts) > 4:
        raise ValueError(f"config argument must be '<dataset>,<horizon>[,<decoder>"
                         f"[,<likelihood>]]' with dataset in {DATASETS}, got {arg!r}")
    config = base_config("forecast")
    config.task.dataset = dataset
    config.task.lookback = 96
    config.task.horizon = horizon
    config.task.seasonality = 24 if dataset.startswith("etth") else 96
    config.model.cell = "gru"
    config.model.hidden = 64
    config.model.num_layers = 1
    config.model.decoder = decoder
    config.model.likelihood = likelihood
    config.batch_size = 32
    config.eval.batch_size = 256
    config.num_train_steps = 1500
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 1e-3
    config.optimizer.clip_norm = 1.0
    config.eval.every_steps = 250
    config.eval.metric = "validation/mse"
    config.eval.patience = 4
    config.checkpoint.every_steps = 250
    config.log.every_steps = 50
    return config
