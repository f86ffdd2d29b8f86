"""Polyphonic music beyond Chung et al.'s 20k-parameter budget: a regularised GRU against the
convolutional baseline of Bai, Kolter & Koltun 2018 (TCN, arXiv:1803.01271), same ``.mat``
files.

    python -m grux.train --config configs/music_beyond.py:jsb_chorales --workdir runs/jsb-gru-big
    python experiments/music_beyond.py          # the validation search and the table

Argument: ``<dataset>[,<cell>]``, dataset in jsb_chorales | nottingham | musedata |
piano_midi, cell gru (default) | lstm | tanh. Defaults (the search's starting point; the
experiment script overrides ``model.hidden``, ``model.num_layers`` and the dropouts and
picks on validation NLL): 2 layers of 256 units (the PyTorch/cuDNN formulation), dropout 0.3
on the input frames, between the layers and on the top layer's outputs, masks shared over
time (variational), Adam 1e-3 with gradient clipping at norm 1, the rate constant for the
first half of the epoch cap and then x0.5 every tenth of it; early stopping after 15 epochs
without improvement, test NLL at the best validation epoch. Batches and the 400-step training windows for MuseData / Piano-midi.de as in
``configs/chung2014_music.py``.

Reference test NLL (Bai et al. 2018, Table 1/2 as quoted in issue 16; not re-checked
against the paper here): JSB Chorales TCN 8.10, GRU 8.43, LSTM 8.45; Nottingham TCN 3.07,
GRU 3.46, LSTM 3.29.

Measured: see ``experiments/results/music_beyond.md`` (README, "Polyphonic music").
"""
import importlib.util
import os

from grux.train.config import base_config

# batches, crops and training-set sizes: those of the Chung et al. config beside this file
_spec = importlib.util.spec_from_file_location(
    "grux_config_chung2014_music", os.path.join(os.path.dirname(__file__), "chung2014_music.py"))
_chung = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_chung)
DATA, TRAIN_PIECES = _chung.DATA, _chung.TRAIN_PIECES

CELLS = ("gru", "lstm", "tanh")
EPOCHS = {"jsb_chorales": 200, "nottingham": 100, "musedata": 100, "piano_midi": 200}


def get_config(arg: str = "jsb_chorales"):
    dataset, _, cell = arg.partition(",")
    cell = cell or "gru"
    if dataset not in DATA or cell not in CELLS:
        raise ValueError(f"config argument must be '<dataset>[,<cell>]' with dataset in "
                         f"{sorted(DATA)} and cell in {CELLS}, got {arg!r}")
    batch, _, crop = DATA[dataset]
    spe = -(-TRAIN_PIECES[dataset] // batch)
    epochs = EPOCHS[dataset]
    config = base_config("music")
    config.task.dataset = dataset
    config.task.max_train_length = crop
    m = config.model
    m.cell, m.formulation, m.hidden, m.num_layers = cell, "cudnn", 256, 2
    m.input_dropout = m.dropout = m.output_dropout = 0.3
    m.variational_dropout = True
    config.batch_size = batch
    config.eval.batch_size = 32
    config.num_train_steps = epochs * spe
    o = config.optimizer
    o.name, o.learning_rate, o.clip_norm = "adam", 1e-3, 1.0
    o.schedule, o.decay_rate = "exponential", 0.5
    o.decay_start, o.decay_every = (epochs // 2) * spe, max(1, epochs // 10) * spe
    config.eval.every_steps = spe
    config.eval.metric = "validation/loss"
    config.eval.patience = 15
    config.checkpoint.every_steps = spe * 10
    config.log.every_steps = spe
    return config
