"""LibriSpeech 100 h (train-clean-100) character recognition with CTC, DeepSpeech2-style
with GRUs (Amodei et al. 2016): 80-bin log-mel with SpecAugment and speed perturbation, two
strided convolutions (25 frames/s), a 5-layer bidirectional GRU of 512 units per direction,
CTC over 28 characters; selected on dev-clean character error rate.

    python -m grux.train --config configs/librispeech.py --workdir runs/librispeech

Needs the corpus prepared (`grux-data prepare librispeech`: the seven OpenSLR 12 archives
extracted under <data_dir>/LibriSpeech, or downloaded, ~61 GB; see docs/datasets.md).
Not run yet: no GPU was lent to the session that wrote it, and a 2-core CPU would need
weeks. Expected cost, estimated not measured: ~46 GFLOP per utterance for forward+backward
(24 M multiply-adds per frame x ~320 frames of a 12.7 s mean utterance, x 3), 1.3 PFLOP
an epoch of 28,539 utterances, 30 epochs; on one H100 the recurrent steps are latency-bound
(~320 x 5 layers x 3 sequential steps a batch), so expect hours, not minutes (several hours
to a day). Expected error rate, from the literature, not checked here: character-CTC
bi-RNN models trained on train-clean-100 alone without a language model reach roughly
15-25 % test-clean WER (greedy decoding); treat this as a range to check, not a target.
"""
from grux.train.config import base_config


def get_config(arg: str = ""):
    if arg:
        raise ValueError(f"configs/librispeech.py takes no argument, got {arg!r}")
    config = base_config("librispeech")
    config.task.speed_min, config.task.speed_max = 0.9, 1.1
    config.model.cell = "gru"
    config.model.hidden = 512
    config.model.num_layers = 5
    config.model.dropout = 0.3
    config.batch_size = 32
    steps_per_epoch = 28_539 // 32
    config.num_train_steps = 30 * steps_per_epoch
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 5e-4
    config.optimizer.schedule = "cosine"
    config.optimizer.warmup_steps = 2000
    config.optimizer.clip_norm = 5.0
    config.eval.every_steps = steps_per_epoch
    config.eval.batch_size = 32
    config.eval.metric = "validation/token_error_rate"
    config.eval.mode = "min"
    config.checkpoint.every_steps = 1000
    config.log.every_steps = 100
    return config
