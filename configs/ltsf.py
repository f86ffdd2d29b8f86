"""Long-horizon forecasting (LTSF protocol) with SegRNN (Lin et al. 2023, arXiv:2308.11200).

    python -m grux.train --config configs/ltsf.py:etth1,96 --workdir runs/ltsf-etth1-96
    python -m grux.train --config configs/ltsf.py:etth2,192 --config.model.input=point --config.model.output=recurrent --workdir runs/ltsf-etth2-192-point-rmf
    python experiments/ltsf.py                  # the whole 5 x 4 table (experiments/ltsf.py)

(the second: the point-wise input and recurrent-output ablations together; each is one
field). Other cells: ``configs/ltsf.py:weather,720`` etc.

Argument: ``<dataset>,<horizon>``, dataset in etth1 | etth2 | ettm1 | ettm2 | weather,
horizon 96 | 192 | 336 | 720 (any multiple of the segment length works). Look-back 96, all
channels in and out (7; weather 21). Splits: ETT 12/4/4 months (ETTh train rows [0, 8640),
validation [8640, 11520), test [11520, 14400); ETTm the same x4), weather 70/10/20 %
(Autoformer: train [0, 36887), validation [36887, 42157), test [42157, 52696)); the
look-back of validation/test windows reaches back into the previous split by 96 rows.
Standardised with the train rows' per-channel mean and std; MSE and MAE on that scale over
EVERY validation/test window (the last partial batch is padded with weight 0, not dropped).

Model and training as SegRNN's ``scripts/SegRNN/Lookback_96/*.sh`` (lss-1138/SegRNN @
d1302489): one GRU layer (PyTorch/cuDNN formulation), d = 512, segment w = 24 (ETTh1, ETTh2,
weather) or 48 (ETTm1, ETTm2), parallel decoding with position + channel embeddings, output
dropout 0.5, last-value subtraction (their ``revin 0`` path), MSE loss, Adam, learning rate
1e-3 (ETTh1), 2e-4 (ETTh2, ETTm1), 1e-4 (ETTm2, weather), batch 256 (weather 64), no
gradient clipping, 30 epochs of shuffled passes over the training windows (last partial batch
dropped as in the Autoformer loader; SegRNN's own data_factory.py not checked), evaluation
every epoch, best checkpoint by validation MSE, early stop after 10 epochs without
improvement, learning rate constant for epochs 1-4 then x0.8 per epoch (their ``lradj
type3``, the default of their run_longExp.py). Steps per epoch = ⌊training windows / batch⌋ for the batch set here: if
you override ``batch_size``, override ``num_train_steps``, ``eval.every_steps``,
``checkpoint.every_steps`` and the ``optimizer.decay_*`` fields with it. The seasonal-naive
baseline uses m = 24 (ETTh), 96 (ETTm: one day) and 96 for weather (a day is 144 steps, longer
than the look-back, so m = 96 repeats the whole 16-hour look-back).

Reference test MSE / MAE, SegRNN repo README (lss-1138/SegRNN, "Comparison Results for
Lookback L = 96", checked in the repository's README at commit 01708ba7; after their fix of
the dropped last test batch):

    dataset  H=96           192            336            720
    ETTh1    0.368 / 0.395  0.408 / 0.419  0.444 / 0.440  0.446 / 0.457
    ETTh2    0.278 / 0.335  0.359 / 0.389  0.421 / 0.436  0.432 / 0.455
    ETTm1    0.330 / 0.369  0.369 / 0.392  0.399 / 0.412  0.454 / 0.443
    ETTm2    0.173 / 0.255  0.237 / 0.298  0.296 / 0.336  0.389 / 0.407
    Weather  0.165 / 0.227  0.211 / 0.273  0.270 / 0.318  0.357 / 0.376

(iTransformer, PatchTST and DLinear columns of the same table are in experiments/ltsf.py.)
Not checked: the numbers against the paper's own runs (the README's are re-runs), and
whether SegRNN's repository scores validation windows in full (we do).

Measured (``python3 experiments/ltsf.py``, seed 0, a 2-core AMD EPYC shared with other
jobs, 2026-11-27; test MSE / MAE at the best validation epoch; details and run times in
``experiments/results/ltsf.md``):

    etth1  96: 0.365 / 0.397 (20.2 min)   192: 0.415 / 0.425   336: 0.458 / 0.446 (7.4 min)
          720: 0.456 / 0.466 (15.0 min)
    etth2  96: 0.283 / 0.341 (2.9 min)    192: 0.372 / 0.393 (5.8 min)
          336: 0.419 / 0.432 (5.9 min)    720: 0.436 / 0.457 (17.2 min)
    ettm1  96: 0.334 / 0.373 (62.3 min, heavily shared CPU)   192: 0.373 / 0.394 (8.6 min)
          336: 0.401 / 0.414 (17.0 min)   720: 0.451 / 0.441 (72.3 min, shared CPU)

    ettm2  96: 0.173 / 0.257 (17.2 min)   192: 0.238 / 0.300 (34.5 min, partly paused)
          336: 0.297 / 0.340 (12.1 min)   720: 0.398 / 0.419 (17.6 min)

    weather 96: 0.163 / 0.227 (179.7 min over two sessions, partly on one core)
          192: 0.209 / 0.272 (about 3 h alone; 375 min in its record with 2 h paused)
          336: 0.268 / 0.316 (2.1 min on one NVIDIA H200; about 3.3 h on the CPU)
          720: 0.357 / 0.375 (1.6 min on the H200; about 3.1 h on the CPU)

    average over the 20 cells: 0.343 / 0.374 (SegRNN 0.340 / 0.372, iTransformer 0.358,
    PatchTST 0.356, DLinear 0.407)

    etth1 over seeds 0/1/2 (patience 3 for 1 and 2, 3-5 min each on the CPU): mean
    0.366 / 0.415 / 0.454 / 0.457 (sd 0.004 ... 0.011; experiments/results/ltsf_etth1_seeds)

    checked and not adopted (docs/forecasting.md): learning rates 5e-4 / 2e-4 on etth1;
    PyTorch's initialisation (``--config.model.init=torch``, SegRNN's code gets it), on
    etth1 + etth2 0.403 against 0.401 (experiments/results/ltsf_torch_init)

(ETTh2, ETTm1, ETTm2 and weather with ``--patience 3``, see docs/forecasting.md; weather 336
and 720 with ``--horizons 336,720 --jobs 2`` on the GPU, 2026-11-28). A training step on the
idle CPU: etth1 0.39 s, ettm1 0.18 s, weather 0.26-0.5 s (two machines) at H = 96; etth1
1.18 s at H = 720; weather 0.61 / 0.78 / 1.23 s at H = 192 / 336 / 720.
"""
from grux.train.config import base_config

LOOKBACK = 96
# dataset: (training rows, segment, learning rate, batch, seasonal-naive period)
SETTINGS = {
    "etth1": (12 * 30 * 24, 24, 1e-3, 256, 24),
    "etth2": (12 * 30 * 24, 24, 2e-4, 256, 24),
    "ettm1": (12 * 30 * 24 * 4, 48, 2e-4, 256, 96),
    "ettm2": (12 * 30 * 24 * 4, 48, 1e-4, 256, 96),
    "weather": (int(52696 * 0.7), 24, 1e-4, 64, 96),
}
EPOCHS, PATIENCE = 30, 10


def steps_per_epoch(dataset: str, horizon: int, batch_size: int) -> int:
    """⌊training windows / batch⌋, windows = training rows − look-back − horizon + 1."""
    return (SETTINGS[dataset][0] - LOOKBACK - horizon + 1) // batch_size


def get_config(arg: str = "etth1,96"):
    parts = arg.split(",")
    if len(parts) != 2 or parts[0] not in SETTINGS or not parts[1].isdigit():
        raise ValueError(f"config argument must be '<dataset>,<horizon>' with dataset in "
                         f"{tuple(SETTINGS)}, got {arg!r}")
    dataset, horizon = parts[0], int(parts[1])
    _, segment, lr, batch, season = SETTINGS[dataset]
    spe = steps_per_epoch(dataset, horizon, batch)
    config = base_config("forecast")
    t = config.task
    t.dataset, t.lookback, t.horizon, t.seasonality = dataset, LOOKBACK, horizon, season
    t.loss, t.sampling = "mse", "epochs"
    m = config.model
    m.kind, m.cell, m.formulation = "segrnn", "gru", "cudnn"
    m.hidden, m.num_layers, m.segment = 512, 1, segment
    m.input, m.output, m.revin, m.channel_embedding = "segment", "parallel", "last", True
    m.output_dropout = 0.5
    config.batch_size = batch
    config.eval.batch_size = 256
    config.num_train_steps = EPOCHS * spe
    o = config.optimizer
    o.name, o.learning_rate, o.clip_norm = "adam", lr, 0.0
    o.schedule, o.decay_rate, o.decay_every, o.decay_start = "exponential", 0.8, spe, 3 * spe
    config.eval.every_steps = spe
    config.eval.metric = "validation/mse"
    config.eval.patience = PATIENCE
    config.checkpoint.every_steps = spe
    config.log.every_steps = max(1, spe // 3)
    return config
