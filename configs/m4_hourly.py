"""M4 hourly (Makridakis et al. 2020): 414 series, horizon 48, sMAPE / MASE (m = 24) / OWA.

    python -m grux.train --config configs/m4_hourly.py --workdir runs/m4-hourly
    python -m grux.train --config configs/m4_hourly.py:autoregressive --workdir runs/m4-ar
    python scripts/plot_forecast.py --workdir runs/m4-hourly --windows 0,100,200 --out m4.png

Argument: ``[<decoder>[,<likelihood>]]`` as in configs/ett.py. One global GRU for all series:
look-back 168 h (one week), every window normalised by its own look-back mean and standard
deviation; training windows are drawn from each history without its last 48 values (a series
uniformly, then a position), validation forecasts those 48 values, test the official 48
(``Hourly-test.csv``) from the full history. sMAPE, MASE (in-sample seasonal-naive scale,
m = 24) and OWA relative to Naive2 are computed as the M4 competition's R code does; the
Naive2 here reproduces the published M4 hourly Naive2 (sMAPE 18.383, MASE 2.395), and the
naive and seasonal naive baselines reproduce 43.003 / 11.608 and 13.912 / 1.193 (tested in
tests/tasks/test_forecast.py).

Measured 2026-11-26 on the 2-core CPU (beside one niced job), this config: early stopping at
step 9,000, best validation OWA 0.683 at step 7,500; 11m25s. Test sMAPE 15.15, MASE 1.379,
OWA 0.700 (Naive2 = 1), while on the same windows seasonal naive scores 13.91 / 1.193 / 0.628
and the linear baseline 14.16 / 1.291 / 0.655: the GRU beats Naive2 clearly but not the
seasonal baselines. With ``--config.num_train_steps=3000`` (3m56s, still improving at the
end): 15.43 / 1.547 / 0.743.
"""
from grux.train.config import base_config


def get_config(arg: str = "direct,none"):
    parts = (arg or "direct").split(",")
    decoder = parts[0] or "direct"
    likelihood = parts[1] if len(parts) > 1 else "none"
    config = base_config("forecast")
    config.task.dataset = "m4_hourly"
    config.task.lookback = 168
    config.task.horizon = 48
    config.task.seasonality = 24
    config.model.cell = "gru"
    config.model.hidden = 128
    config.model.num_layers = 1
    config.model.decoder = decoder
    config.model.likelihood = likelihood
    config.batch_size = 64
    config.eval.batch_size = 207            # 414 series = 2 evaluation batches
    config.num_train_steps = 12_000          # early stopping (patience 6) ends it sooner
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 1e-3
    config.optimizer.clip_norm = 1.0
    config.eval.every_steps = 250
    config.eval.metric = "validation/owa"
    config.eval.patience = 6
    config.checkpoint.every_steps = 250
    config.log.every_steps = 50
    return config
