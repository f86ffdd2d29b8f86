"""Flax NNX modules owning parameters; the mathematics lives in :mod:`grux.ops`."""
from grux.nn.recurrent import (GRU, LSTM, Bidirectional, GRULayer, LSTMLayer, MinGRU,
                               MinGRULayer, Recurrent, RecurrentLayer, TanhRNN, TanhRNNLayer)

__all__ = ["GRU", "LSTM", "Bidirectional", "GRULayer", "LSTMLayer", "MinGRU", "MinGRULayer",
           "Recurrent", "RecurrentLayer", "TanhRNN", "TanhRNNLayer"]
from grux.nn.interop import (linen_gru_params, load_linen_gru_params,  # noqa: E402
                             load_torch_state_dict, torch_state_dict)

__all__ += ["linen_gru_params", "load_linen_gru_params", "load_torch_state_dict",
            "torch_state_dict"]
