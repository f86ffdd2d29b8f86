"""Connected digits (TIDIGITS-like, generated from the Free Spoken Digit Dataset's real
recordings): 1-7 digits per utterance with pauses, level changes and background noise;
log-mel (40 bins) with SpecAugment, two strided convolutions (4x fewer frames), a 2-layer
bidirectional GRU of 128 units per direction, CTC over the ten digits.

    python -m grux.train --config configs/connected_digits.py --workdir runs/digits-sd
    python -m grux.train --config configs/connected_digits.py:theo --workdir runs/digits-theo

Argument: "" speaker-dependent (the recordings of the official split: index 0-4 make the
test utterances, 5-9 validation, 10-49 training), or a speaker whose recordings make the
test utterances (the next speaker's validation, the other four training). 1,000 test and
1,000 validation utterances, the same in every run (task.data_seed). Targets (issue 13):
speaker-dependent digit error rate <= 1 %; speaker-independent <= 10 % (aim).
Measured 2026-11-27 on a 2-core AMD EPYC busy with other jobs (``python3
experiments/speech.py``; docs/speech.md), test at the best validation digit error rate:
speaker-dependent GRU digit error rate 0.38 %, string error rate 1.50 % (21.7 min of
training under load; 8.2 min alone on 2026-11-26, same numbers); LSTM 0.76 % / 2.90 %,
tanh-RNN 1.06 % / 3.90 %. ``:george`` (speaker-independent): 20.8 % / 55.5 % (11.2 min),
short of the 10 % aim; other speakers not run.
"""
from grux.tasks.speech.digits import SPEAKERS
from grux.train.config import base_config


def get_config(arg: str = ""):
    if arg and arg not in SPEAKERS:
        raise ValueError(f"config argument must be '' (speaker-dependent) or a speaker in "
                         f"{SPEAKERS}, got {arg!r}")
    config = base_config("connected_digits")
    config.task.test_speaker = arg
    config.task.speed_min, config.task.speed_max = 0.9, 1.1
    config.model.cell = "gru"
    config.model.hidden = 128
    config.model.num_layers = 2
    config.model.dropout = 0.2
    config.batch_size = 32
    config.num_train_steps = 4000
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 2e-3
    config.optimizer.schedule = "cosine"
    config.optimizer.warmup_steps = 200
    config.optimizer.clip_norm = 1.0
    config.eval.every_steps = 500
    config.eval.batch_size = 50
    config.eval.metric = "validation/token_error_rate"
    config.eval.mode = "min"
    config.checkpoint.every_steps = 500
    config.log.every_steps = 100
    return config
