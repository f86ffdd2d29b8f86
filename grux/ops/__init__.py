"""Pure array functions: the recurrence mathematics (no Flax, no configs).

All scan functions are time-major (``(T, B, ...)``) and take the input projection ``xp``
already computed for every step (one large matmul outside the scan).
"""
from grux.ops.gru import FORMULATIONS, gru_cell, gru_scan, gru_step
from grux.ops.lstm import lstm_cell, lstm_scan
from grux.ops.mingru import mingru_cell, mingru_chunked, mingru_parallel, mingru_sequential
from grux.ops.rnn import tanh_rnn_cell, tanh_rnn_scan
from grux.ops.scan import (bidirectional_scan, check_lengths, lengths_to_mask, masked_scan,
                           reverse_within_lengths, sigmoid)

__all__ = [
    "FORMULATIONS", "gru_cell", "gru_scan", "gru_step", "lstm_cell", "lstm_scan",
    "mingru_cell", "mingru_chunked", "mingru_parallel", "mingru_sequential", "tanh_rnn_cell",
    "tanh_rnn_scan",
    "bidirectional_scan", "check_lengths", "lengths_to_mask", "masked_scan",
    "reverse_within_lengths", "sigmoid",
]
