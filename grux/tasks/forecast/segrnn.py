"""SegRNN (Lin et al. 2023, arXiv:2308.11200): a segment-wise recurrent forecaster for long
horizons, as ``model.kind = "segrnn"`` of the forecasting task.

For a look-back ``x (B, L, C)`` and horizon ``H``, with segment length ``w`` and width ``d``
(``model.segment``, ``model.hidden``); the array mathematics is in :mod:`grux.ops.series`:

1. Reversible instance normalisation (``model.revin``: subtract each series' last value,
   SegRNN's default, or its mean, or nothing; ``model.revin_scale`` also divides by its
   standard deviation; ``model.revin_affine`` adds a learned per-channel ``γ, β``).
2. Channel independence: the ``C`` channels are folded into the batch, ``N = B·C`` univariate
   series read by the same weights.
3. Encoder: each series is cut into ``L/w`` segments, each embedded by ``ReLU(W_e s + b_e)``
   (``w → d``), and a recurrent stack (any grux cell, ``model.cell``) reads the ``L/w``
   embeddings. ``model.input = "point"`` is the point-wise ablation: ``L`` steps of single
   values (``1 → d``) instead.
4. Decoder, ``model.output = "parallel"`` (SegRNN's PMF): for each of the ``M = H/w`` output
   segments, one more recurrent step from the encoder's final state, all ``M`` at once and
   independent of each other; the input of segment ``m`` of channel ``c`` is
   ``[p_m, e_c]``, a learned position embedding (``d − ⌊d/2⌋``) and a learned channel
   embedding (``⌊d/2⌋``; ``model.channel_embedding = False``: ``p_m`` of width ``d``). The
   step's output ``o`` gives the segment ``ŷ = W_o dropout(o) + b_o`` (``d → w``).
   ``model.output = "recurrent"`` (RMF, the ablation): ``ŷ_1`` from the encoder's last
   output, then each predicted segment is embedded (as an input segment, or as ``w`` points)
   and read by the stack to give the next, ``M − 1`` times in sequence.
5. The ``M`` segments are concatenated to ``H`` values per series, unfolded to
   ``(B, H, C)`` and de-normalised.

Initialisation (``model.init``): ``"flax"`` keeps the grux defaults (LeCun-normal input
kernels, orthogonal recurrent kernels, zero biases); ``"torch"`` draws every weight and bias
as PyTorch's defaults do for SegRNN's ``nn.Linear`` and ``nn.GRU/LSTM/RNN`` layers,
``U(−1/√fan_in, 1/√fan_in)`` for the embedding and head, ``U(−1/√d, 1/√d)`` for every
recurrent-stack parameter (so no LSTM forget-gate bias); the position and channel embeddings
are ``N(0, 1)`` in both (``torch.randn`` in SegRNN). With ``"flax"`` the weights' standard
deviation is √3 times PyTorch's.

The first layer's input projection of the ``[p_m, e_c]`` queries is computed once for the
``C·M`` distinct queries and broadcast over the batch, and the recurrent matmul of the
encoder state once per series and broadcast over the ``M`` segments: the decoder's cost is
then elementwise in ``M`` (on a 2-core AMD EPYC a training step of ``etth1,720``, M = 30,
took 1.94 s with the state repeated M times before the matmul, 2026-11-27).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from grux.ops.series import (decoder_queries, fold_channels, revin_denorm, revin_norm,
                             revin_stats, segment, unfold_channels, unsegment)
from grux.tasks.common import build_recurrent, uniform_init

INPUTS = ("segment", "point")
OUTPUTS = ("parallel", "recurrent")
INITS = ("flax", "torch")


def _fold(key, *data):
    """``key`` folded with ``data`` (``None`` stays ``None``)."""
    if key is None:
        return None
    for d in data:
        key = jax.random.fold_in(key, d)
    return key


class SegRNNForecaster(nnx.Module):
    """SegRNN on ``config.model`` (see the module docstring). Call: ``model(x, y=None,
    rngs=None) → (ŷ (B, H, C), None)``; ``rngs`` is the dropout key in training (``None``:
    no output dropout)."""

    def __init__(self, m, channels: int, lookback: int, horizon: int, rngs: nnx.Rngs):
        w = m.segment
        if horizon % w or (m.input == "segment" and lookback % w):
            raise ValueError(f"config.model.segment ({w}) must divide config.task.horizon "
                             f"({horizon}) and, with segment input, config.task.lookback "
                             f"({lookback})")
        self.channels, self.lookback, self.horizon, self.w = channels, lookback, horizon, w
        self.in_w = 1 if m.input == "point" else w
        self.n_out = horizon // w
        self.parallel = m.output == "parallel"
        self.center, self.scale = m.revin, m.revin_scale
        d = m.hidden
        self.embed = nnx.Linear(self.in_w, d, rngs=rngs)
        self.rnn = build_recurrent(m, d, rngs)
        dc = d // 2 if (self.parallel and m.channel_embedding) else 0
        self.position = (nnx.Param(jax.random.normal(rngs.params(), (self.n_out, d - dc)))
                         if self.parallel else None)
        self.channel = (nnx.Param(jax.random.normal(rngs.params(), (channels, dc)))
                        if dc else None)
        self.dropout = nnx.Dropout(m.output_dropout)
        self.head = nnx.Linear(d, w, rngs=rngs)
        self.gamma = nnx.Param(jnp.ones((channels,))) if m.revin_affine else None
        self.beta = nnx.Param(jnp.zeros((channels,))) if m.revin_affine else None
        if m.get("init", "flax") == "torch":                  # init: absent in older runs
            uniform_init(self.embed, rngs.params(), self.in_w ** -0.5)   # nn.Linear
            uniform_init(self.head, rngs.params(), d ** -0.5)
            uniform_init(self.rnn, rngs.params(), d ** -0.5)             # nn.GRU etc.

    # ------------------------------------------------------------------ pieces
    def _affine(self):
        if self.gamma is None:
            return None, None
        return self.gamma[...], self.beta[...]

    def _drop(self, o, key):
        return self.dropout(o, deterministic=True) if key is None else self.dropout(o, rngs=key)

    def tokens(self, series):
        """``(N, T) → (N, T/w_in, w_in)``: the encoder's inputs (segments, or points)."""
        return segment(series, self.in_w)

    def encode(self, z, key=None):
        """Normalised look-backs ``z (B, L, C)`` → ``(last output (N, d), final state)``
        with ``N = B·C`` (row ``b·C + c``), states in the stack's layout."""
        e = jax.nn.relu(self.embed(self.tokens(fold_channels(z))))
        out, state = self.rnn(e, rngs=key)
        return out[:, -1], state

    def queries(self):
        """The parallel decoder's inputs ``(C, M, d)`` (``(1, M, d)`` without channel
        embedding)."""
        return decoder_queries(self.position[...],
                               None if self.channel is None else self.channel[...])

    def _stack_step(self, xp0, state, key):
        """One step of the stack for ``M`` inputs per series from one state per series:
        ``xp0 (N, M, G)`` is the projected first-layer input, state leaves are
        ``(layers, N, H)``. Each layer's state is shared by the ``M`` inputs
        (:meth:`~grux.nn.recurrent.RecurrentLayer.step_shared_state`: the recurrent matmul
        is done once per series, not ``M`` times). Returns the last layer's output
        ``(N, M, H)``. Inter-layer dropout as in :class:`grux.nn.Recurrent`."""
        rnn, h = self.rnn, None
        for l in range(rnn.num_layers):
            layer = rnn.layers[l]
            if l == 0:
                xp = xp0
            else:
                if rnn.dropout is not None:
                    h = rnn.dropout(h, rngs=_fold(key, l - 1))
                xp = layer.project(h)
            h = layer.step_shared_state(xp, jax.tree.map(lambda s, l=l: s[l], state))
        return h

    def decode_parallel(self, state, batch: int, key=None):
        """PMF: all ``M`` output segments ``(N, M, w)`` from the encoder state."""
        q = self.queries()                                     # (C or 1, M, d)
        xp = self.rnn.layers[0].project(q)                     # (C or 1, M, G)
        n, m = batch * self.channels, self.n_out
        xp = jnp.broadcast_to(xp[None], (batch, self.channels, m, xp.shape[-1]))
        xp = xp.reshape(n, m, -1)                              # row b·C + c
        o = self._stack_step(xp, state, _fold(key, 0))         # (N, M, d)
        return self.head(self._drop(o, _fold(key, 1)))

    def decode_recurrent(self, last, state, key=None):
        """RMF: ``ŷ_1`` from the encoder's last output, then each predicted segment read by
        the stack (from its state) gives the next; ``(N, M, w)``."""
        first = self.head(self._drop(last, _fold(key, 1, 0)))   # (N, w)
        if self.n_out == 1:
            return first[:, None]
        graphdef, params = nnx.split(self)

        def step(carry, k):
            st, prev = carry
            model = nnx.merge(graphdef, params)
            e = jax.nn.relu(model.embed(model.tokens(prev)))
            out, st = model.rnn(e, initial_state=st, rngs=_fold(key, 0, k))
            y = model.head(model._drop(out[:, -1], _fold(key, 1, k)))
            return (st, y), y

        _, ys = jax.lax.scan(step, (state, first), jnp.arange(1, self.n_out))
        return jnp.concatenate([first[:, None], jnp.swapaxes(ys, 0, 1)], axis=1)

    # ------------------------------------------------------------------ forward
    def __call__(self, x, y=None, rngs=None):
        x = jnp.asarray(x)
        batch, length, channels = x.shape
        if (length, channels) != (self.lookback, self.channels):
            raise ValueError(f"SegRNN was built for look-back {self.lookback} x "
                             f"{self.channels} channels, got input shape {x.shape}")
        gamma, beta = self._affine()
        loc, s = revin_stats(x, self.center, self.scale)
        z = revin_norm(x, loc, s, gamma, beta)
        last, state = self.encode(z, _fold(rngs, 0))
        if self.parallel:
            seg = self.decode_parallel(state, batch, _fold(rngs, 1))
        else:
            seg = self.decode_recurrent(last, state, _fold(rngs, 1))
        out = unfold_channels(unsegment(seg), self.channels)   # (B, H, C)
        return revin_denorm(out, loc, s, gamma, beta), None
