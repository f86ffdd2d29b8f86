"""Character-level language models: Penn Treebank characters and tiny Shakespeare.

    python -m grux.train --config configs/char_lm.py:ptb_char --workdir runs/ptb-char
    python -m grux.train --config configs/char_lm.py:tiny_shakespeare --workdir runs/shakespeare
    grux-sample --workdir runs/shakespeare --prompt "ROMEO:" --temperature 0.8 --top_k 10

ptb_char: Mikolov's PTB character set (49 symbols + <eos>), a 1-layer GRU of 512 units with a
128-d embedding, BPTT 100, batch 32, Adam 2e-3 with cosine decay, clip 1, 2 epochs. Reference:
Graves 2013 reports 1.24 bpc (test, much larger model with dynamic evaluation).
Measured (2-core CPU, one other job running): validation 1.551 bpc, test 1.508 bpc, 19m26s.
tiny_shakespeare: the characters of Karpathy's file (first 90 % train, next 5 % validation,
last 5 % test), 2-layer GRU 256, dropout 0.2, BPTT 100, batch 32, Adam 2e-3, 10 epochs.
Reference: char-rnn's 2x512 LSTM reaches a validation loss of ~1.45 nats (~2.1 bpc).
Measured (2-core CPU shared with two other jobs): validation 1.428 nats (2.060 bpc), test 1.526
nats (2.202 bpc), 33m50s. README, "Language modelling", has a sample.
"""
from grux.train.config import base_config

# dataset: (train tokens, hidden, embed, layers, dropout, epochs)
SETUPS = {"ptb_char": (5_017_482, 512, 128, 1, 0.0, 2),
          "tiny_shakespeare": (1_003_854, 256, 0, 2, 0.2, 10)}


def get_config(arg: str = "tiny_shakespeare"):
    if arg not in SETUPS:
        raise ValueError(f"config argument must be one of {sorted(SETUPS)}, got {arg!r}")
    tokens, hidden, embed, layers, dropout, epochs = SETUPS[arg]
    batch, bptt = 32, 100
    steps_per_epoch = -(-(tokens // batch - 1) // bptt)
    config = base_config("lm")
    config.task.dataset = arg
    config.task.bptt = bptt
    config.model.cell = "gru"
    config.model.hidden = hidden
    config.model.embed = embed
    config.model.num_layers = layers
    config.model.dropout = dropout
    config.model.init_scale = 0.0
    config.batch_size = batch
    config.num_train_steps = epochs * steps_per_epoch
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 2e-3
    config.optimizer.schedule = "cosine"
    config.optimizer.end_factor = 0.05
    config.optimizer.clip_norm = 1.0
    config.eval.batch_size = 32
    config.eval.every_steps = max(100, steps_per_epoch // 2)
    config.eval.metric = "validation/bpc"
    config.checkpoint.every_steps = max(100, steps_per_epoch // 2)
    config.log.every_steps = 50
    return config
