"""Chung et al. 2014 (arXiv:1412.3555), Table 2: polyphonic music NLL per time step.

    python -m grux.train --config configs/chung2014_music.py:jsb_chorales,gru --workdir runs/jsb-gru
    python experiments/chung2014_music.py        # all 12 models, table + plot (README)

Argument: ``<dataset>,<cell>`` with dataset in jsb_chorales | nottingham | musedata |
piano_midi and cell in gru | lstm | tanh. Set-up of the paper: one recurrent layer of about
20k parameters (GRU 46 units, LSTM 36, tanh-RNN 100), RMSProp, gradient norm clipped to 1,
weight noise with std 0.075, learning rate chosen on validation (the experiment script sweeps
{0.003, 0.01}; the default here is the value it chose, so this command gives the README's
row), early stopping on validation NLL. Evaluation every epoch.

Paper test NLL (tanh / GRU / LSTM): JSB 9.10 / 8.54 / 8.67, Nottingham 3.13 / 3.23 / 3.20,
MuseData 6.23 / 5.99 / 6.23, Piano-midi 9.03 / 8.82 / 9.03.
Measured here (2-core CPU, learning rate picked from {0.003, 0.01} on validation), test NLL
tanh / GRU / LSTM: JSB 8.63 / 8.50 / 8.44 (under a minute per run), Nottingham 3.84 / 3.85 /
3.85 (8-16 min), MuseData 7.81 / 7.43 / 7.57 (8-12 min), Piano-midi 7.98 / 7.74 / 7.85
(2 min). Details: README, "Polyphonic music", and experiments/results/chung2014_music.md.
"""
from grux.train.config import base_config

UNITS = {"gru": 46, "lstm": 36, "tanh": 100}
# (global batch, epochs, crop long pieces to this many steps in training; 0 = whole pieces)
DATA = {"jsb_chorales": (8, 150, 0), "nottingham": (16, 100, 0),
        "musedata": (16, 120, 400), "piano_midi": (8, 150, 400)}
TRAIN_PIECES = {"jsb_chorales": 229, "nottingham": 694, "musedata": 524, "piano_midi": 87}
# the learning rate that experiments/chung2014_music.py chose on validation from {0.003, 0.01}
# (README table), so that the one-model command gives that table's row
CHOSEN_LR = {("jsb_chorales", "gru"): 3e-3, ("jsb_chorales", "lstm"): 3e-3,
             ("jsb_chorales", "tanh"): 3e-3, ("nottingham", "gru"): 1e-2,
             ("nottingham", "lstm"): 1e-2, ("nottingham", "tanh"): 3e-3,
             ("musedata", "gru"): 1e-2, ("musedata", "lstm"): 1e-2, ("musedata", "tanh"): 1e-2,
             ("piano_midi", "gru"): 3e-3, ("piano_midi", "lstm"): 1e-2,
             ("piano_midi", "tanh"): 3e-3}


def get_config(arg: str = "jsb_chorales,gru"):
    dataset, _, cell = arg.partition(",")
    cell = cell or "gru"
    if dataset not in DATA or cell not in UNITS:
        raise ValueError(f"config argument must be '<dataset>,<cell>' with dataset in "
                         f"{sorted(DATA)} and cell in {sorted(UNITS)}, got {arg!r}")
    batch, epochs, crop = DATA[dataset]
    steps_per_epoch = -(-TRAIN_PIECES[dataset] // batch)
    config = base_config("music")
    config.task.dataset = dataset
    config.task.max_train_length = crop
    config.model.cell = cell
    config.model.hidden = UNITS[cell]
    config.batch_size = batch
    config.eval.batch_size = 32
    config.num_train_steps = epochs * steps_per_epoch
    config.weight_noise = 0.075
    config.optimizer.name = "rmsprop"
    config.optimizer.learning_rate = CHOSEN_LR[dataset, cell]
    config.optimizer.rho = 0.9
    config.optimizer.clip_norm = 1.0
    config.eval.every_steps = steps_per_epoch
    config.eval.metric = "validation/loss"
    config.eval.patience = 10
    config.checkpoint.every_steps = steps_per_epoch * 10
    config.log.every_steps = steps_per_epoch
    return config
