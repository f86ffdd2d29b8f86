"""Flax NNX recurrent layers: thin modules that own parameters and call :mod:`grux.ops`.

Shapes at the module boundary are batch-major ``(B, T, F)`` unless ``time_major=True``
(``(T, B, F)``). Every layer returns ``(outputs, final_state)``.

* :class:`GRULayer`, :class:`LSTMLayer`, :class:`TanhRNNLayer`, :class:`MinGRULayer`: one
  direction of one layer. Arguments ``lengths`` (``(B,)`` ints) or ``mask`` (``(B, T)``,
  a prefix mask) handle variable-length batches: padded outputs are zero and the final state
  is taken at each sequence's true end; with ``reverse=True`` each sequence is read backwards
  from its own last valid step.
* :class:`Bidirectional`: a forward and a backward layer, outputs concatenated; with
  ``fuse=True`` both directions advance together in one scan (half the sequential steps).
* :class:`Recurrent` (and :class:`GRU`, :class:`LSTM`, :class:`TanhRNN`, :class:`MinGRU`):
  multi-layer, optionally bidirectional stacks with inter-layer dropout, with the
  ``torch.nn.GRU`` conventions for the state: ``(num_layers · num_directions, B, H)``.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import nnx

from grux import ops
from grux.ops.scan import check_lengths, lengths_to_mask, reverse_within_lengths

Array = jax.Array
Initializer = Callable[..., Array]

default_kernel_init = nnx.initializers.lecun_normal()
default_recurrent_init = nnx.initializers.orthogonal()
default_bias_init = nnx.initializers.zeros_init()


def _blockwise(init: Initializer, key, shape, dtype, blocks: int) -> Array:
    """Initialise a ``(K, blocks·H)`` matrix one ``(K, H)`` gate block at a time."""
    k, n = shape
    keys = jax.random.split(key, blocks)
    return jnp.concatenate([init(kk, (k, n // blocks), dtype) for kk in keys], axis=1)


class RecurrentLayer(nnx.Module):
    """Shared machinery: parameters, validation, layout, masking and reversal.

    Subclasses set ``blocks`` (gate blocks in ``w_ih``), ``has_recurrent_weights`` and
    implement :meth:`_scan` (time-major, on the projected input) and the state helpers.
    """

    blocks: int = 1
    has_recurrent_weights: bool = True

    def __init__(self, in_features: int, hidden_features: int, *, use_bias: bool = True,
                 recurrent_bias: bool = True, dtype: Any = None,
                 param_dtype: Any = jnp.float32, unroll: int = 1, remat: bool = False,
                 kernel_init: Initializer = default_kernel_init,
                 recurrent_init: Initializer = default_recurrent_init,
                 bias_init: Initializer = default_bias_init, rngs: nnx.Rngs):
        if in_features <= 0 or hidden_features <= 0:
            raise ValueError(f"in_features and hidden_features must be positive, got "
                             f"{in_features} and {hidden_features}")
        self.in_features = in_features
        self.hidden_features = hidden_features
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.unroll = unroll
        self.remat = remat
        g = self.blocks * hidden_features
        self.w_ih = nnx.Param(_blockwise(kernel_init, rngs.params(), (in_features, g),
                                         param_dtype, self.blocks))
        self.b_ih = nnx.Param(bias_init(rngs.params(), (g,), param_dtype)) if use_bias else None
        if self.has_recurrent_weights:
            self.w_hh = nnx.Param(_blockwise(recurrent_init, rngs.params(),
                                             (hidden_features, g), param_dtype, self.blocks))
            self.b_hh = (nnx.Param(bias_init(rngs.params(), (g,), param_dtype))
                         if (use_bias and recurrent_bias) else None)

    # -- state helpers (overridden by LSTM) ---------------------------------------------
    def initial_state(self, batch: int, dtype: Any = None) -> Any:
        """Zero state for ``batch`` sequences."""
        return jnp.zeros((batch, self.hidden_features), dtype or self._compute_dtype())

    def _check_state(self, state: Any, batch: int, dtype) -> Any:
        expect = (batch, self.hidden_features)
        state = jnp.asarray(state)
        if state.shape != expect:
            raise ValueError(f"initial_state must have shape (batch, hidden)={expect}, "
                             f"got {state.shape}")
        return state.astype(dtype)

    def _compute_dtype(self):
        return self.dtype or self.param_dtype

    def _param(self, p, dtype):
        return None if p is None else p[...].astype(dtype)

    def _project(self, x_tm: Array, dtype) -> Array:
        """``x W_ih + b_ih`` for all steps as one ``(T·B, F) × (F, G·H)`` matmul."""
        t, b, f = x_tm.shape
        xp = x_tm.reshape(t * b, f) @ self._param(self.w_ih, dtype)
        if self.b_ih is not None:
            xp = xp + self._param(self.b_ih, dtype)
        return xp.reshape(t, b, -1)

    def _prepare(self, x, lengths, mask, time_major) -> tuple[Array, Array | None, Any]:
        """Validate the input; ``(x time-major in the compute dtype, (T, B) mask or None,
        compute dtype)``."""
        x = jnp.asarray(x)
        if x.ndim != 3:
            raise ValueError(f"{type(self).__name__} expects a rank-3 input "
                             f"({'(T, B, F)' if time_major else '(B, T, F)'}), "
                             f"got shape {x.shape}")
        if x.shape[-1] != self.in_features:
            raise ValueError(f"{type(self).__name__} was built for in_features="
                             f"{self.in_features} but the input has {x.shape[-1]} features")
        x_tm = x if time_major else jnp.swapaxes(x, 0, 1)
        t, b = x_tm.shape[:2]
        mask_tm = _resolve_mask(lengths, mask, t, b, time_major)
        dtype = self._compute_dtype()
        return x_tm.astype(dtype), mask_tm, dtype

    def _state_or_zeros(self, initial_state, batch, dtype):
        return (self.initial_state(batch, dtype) if initial_state is None
                else self._check_state(initial_state, batch, dtype))

    def _recurrent_params(self, dtype) -> tuple[Array, Array | None]:
        """``(w_hh, b_hh)`` in the compute dtype."""
        return self._param(self.w_hh, dtype), self._param(self.b_hh, dtype)

    def _scan(self, xp: Array, state: Any, mask: Array | None, dtype) -> tuple[Array, Any]:
        return self._scan_with(xp, state, mask, *self._recurrent_params(dtype))

    def _scan_with(self, xp, state, mask, w_hh, b_hh) -> tuple[Array, Any]:
        """The scan op on given recurrent weights: ``(H, G·H)``, or ``(D, H, G·H)`` to run
        ``D`` stacked recurrences (``xp (T, D, B, G·H)``, state leaves ``(D, B, H)``)."""
        raise NotImplementedError

    def fusion_signature(self) -> tuple:
        """What must agree for two layers to run as the two directions of one fused scan
        (:class:`Bidirectional` with ``fuse=True``): the class, sizes, dtypes, biases and
        scan options."""
        return (type(self), self.in_features, self.hidden_features, self.dtype,
                self.param_dtype, self.b_ih is None, getattr(self, "b_hh", None) is None,
                self.unroll, self.remat)

    def _cell(self, xp: Array, state: Any, dtype) -> Any:
        """One step of the recurrence on a projected input ``(B, G·H)``: the new state."""
        raise NotImplementedError

    # -- single steps (autoregressive decoders, samplers) ---------------------------------
    def project(self, x: Array, *, features: slice | None = None, bias: bool = True) -> Array:
        """The input projection ``x W_ih[features] + b_ih`` for inputs of any leading shape,
        in the compute dtype. ``features`` selects rows of ``W_ih``, for an input whose
        parts arrive at different times (a decoder knows its embeddings for all steps but
        its attention context one step at a time: project the parts, add them)."""
        dtype = self._compute_dtype()
        w = self._param(self.w_ih, dtype)
        xp = jnp.asarray(x).astype(dtype) @ (w if features is None else w[features])
        if bias and self.b_ih is not None:
            xp = xp + self._param(self.b_ih, dtype)
        return xp

    def step_projected(self, xp_t: Array, state: Any) -> tuple[Array, Any]:
        """One time step from the projected input ``xp_t (B, G·H)`` (see :meth:`project`):
        ``(output (B, H), new state)``, the same arithmetic as the scan."""
        dtype = self._compute_dtype()
        batch = xp_t.shape[0]
        state = self._check_state(state, batch, dtype)
        new = self._cell(xp_t.astype(dtype), state, dtype)
        return (new[0] if isinstance(new, tuple) else new), new

    def step_shared_state(self, xp: Array, state: Any) -> Array:
        """One time step for ``M`` projected inputs per state: ``xp (B, M, G·H)`` from
        ``state`` as :meth:`initial_state` (``(B, H)`` leaves) → outputs ``(B, M, H)``.
        The state enters the cell as ``(B, 1, H)`` and broadcasts against the ``M`` inputs,
        so the recurrent matmul ``h W_hh`` they share is done once per state, not ``M``
        times (a parallel multi-step decoder starts every output step from one state)."""
        dtype = self._compute_dtype()
        xp = jnp.asarray(xp)
        if xp.ndim != 3:
            raise ValueError(f"step_shared_state expects xp of shape (batch, M, G·H), got "
                             f"{xp.shape}")
        state = self._check_state(state, xp.shape[0], dtype)
        new = self._cell(xp.astype(dtype), jax.tree.map(lambda s: s[:, None], state), dtype)
        return new[0] if isinstance(new, tuple) else new

    def step(self, x_t: Array, state: Any) -> tuple[Array, Any]:
        """One time step: ``x_t (B, F)``, ``state`` as :meth:`initial_state` →
        ``(output (B, H), new state)``."""
        return self.step_projected(self.project(x_t), state)

    def __call__(self, x: Array, *, lengths: Array | None = None, mask: Array | None = None,
                 initial_state: Any = None, reverse: bool = False,
                 time_major: bool = False,
                 recurrent_weights: Callable[[Array], Array] | None = None
                 ) -> tuple[Array, Any]:
        """Run the layer over a sequence.

        Args:
          x: ``(B, T, F)`` (or ``(T, B, F)`` with ``time_major=True``).
          lengths: optional ``(B,)`` integer sequence lengths.
          mask: optional ``(B, T)`` (``(T, B)`` if time-major) prefix validity mask; give
            either ``lengths`` or ``mask``.
          initial_state: optional state (``(B, H)``; ``(h, c)`` for the LSTM).
          reverse: process each sequence from its last valid step to its first; outputs are
            returned in the original time order.
          time_major: layout of ``x``, ``mask`` and the outputs.
          recurrent_weights: optional function applied to ``W_hh`` (compute dtype) before the
            scan, so every step of every sequence of this call uses its result: DropConnect
            on the recurrent weights (:class:`Recurrent` ``weight_dropout``). Layers without
            recurrent weights (minGRU) reject it.

        Returns:
          ``(outputs (B, T, H) or (T, B, H), final_state)``.
        """
        x_tm, mask_tm, dtype = self._prepare(x, lengths, mask, time_major)
        state = self._state_or_zeros(initial_state, x_tm.shape[1], dtype)
        if reverse:
            seq_lengths = None if mask_tm is None else mask_tm.sum(0).astype(jnp.int32)
            x_tm = reverse_within_lengths(x_tm, seq_lengths)
        xp = self._project(x_tm, dtype)
        if recurrent_weights is None:
            outputs, final = self._scan(xp, state, mask_tm, dtype)
        else:
            if not self.has_recurrent_weights:
                raise ValueError(f"recurrent_weights: {type(self).__name__} has no recurrent "
                                 f"weights")
            w_hh, b_hh = self._recurrent_params(dtype)
            outputs, final = self._scan_with(xp, state, mask_tm, recurrent_weights(w_hh), b_hh)
        if reverse:
            outputs = reverse_within_lengths(outputs, seq_lengths)
        return (outputs if time_major else jnp.swapaxes(outputs, 0, 1)), final


def _resolve_mask(lengths, mask, t, b, time_major) -> Array | None:
    """Turn ``lengths`` or a user mask into a time-major ``(T, B)`` boolean mask."""
    if lengths is not None and mask is not None:
        raise ValueError("give either lengths or mask, not both")
    if lengths is not None:
        lengths = jnp.asarray(lengths)
        check_lengths(lengths, b)
        return lengths_to_mask(lengths, t).T
    if mask is not None:
        mask = jnp.asarray(mask)
        expect = (t, b) if time_major else (b, t)
        if mask.shape != expect:
            raise ValueError(f"mask must have shape {expect}, got {mask.shape}")
        mask = mask.astype(bool)
        return mask if time_major else mask.T
    return None


class GRULayer(RecurrentLayer):
    """One GRU layer (equations in :mod:`grux.ops.gru`).

    ``formulation="cudnn"`` (default; PyTorch/Keras/cuDNN, two bias vectors) or ``"cho"``
    (Cho et al. 2014; reset before the recurrent matmul, no recurrent bias).
    ``backward="custom"`` uses the cuDNN-style VJP, ``"autodiff"`` differentiates the scan.
    """

    blocks = 3

    def __init__(self, in_features: int, hidden_features: int, *,
                 formulation: str = "cudnn", backward: str = "custom", **kwargs):
        ops.gru.check_formulation(formulation)
        if backward not in ops.gru.BACKWARDS:
            raise ValueError(f"backward must be one of {ops.gru.BACKWARDS}, got {backward!r}")
        self.formulation = formulation
        self.backward = backward
        kwargs.setdefault("recurrent_bias", formulation == "cudnn")
        if formulation == "cho" and kwargs["recurrent_bias"]:
            raise ValueError("the 'cho' GRU has no recurrent bias (it would duplicate b_ih)")
        super().__init__(in_features, hidden_features, **kwargs)

    def _cell(self, xp, state, dtype):
        return ops.gru_cell(state, xp, self._param(self.w_hh, dtype),
                            self._param(self.b_hh, dtype), self.formulation)

    def _scan_with(self, xp, state, mask, w_hh, b_hh):
        return ops.gru_scan(xp, state, w_hh, b_hh, mask, formulation=self.formulation,
                            backward=self.backward, unroll=self.unroll, remat=self.remat)

    def fusion_signature(self):
        return super().fusion_signature() + (self.formulation, self.backward)


class LSTMLayer(RecurrentLayer):
    """One LSTM layer (gate order i, f, g, o). ``forget_bias`` is added to ``b_ih``'s
    forget block at initialisation (1.0 as recommended by Jozefowicz et al. 2015)."""

    blocks = 4

    def __init__(self, in_features: int, hidden_features: int, *, forget_bias: float = 1.0,
                 **kwargs):
        super().__init__(in_features, hidden_features, **kwargs)
        if forget_bias and self.b_ih is not None:
            h = hidden_features
            self.b_ih[...] = self.b_ih[...].at[h:2 * h].add(forget_bias)

    def initial_state(self, batch, dtype=None):
        z = jnp.zeros((batch, self.hidden_features), dtype or self._compute_dtype())
        return (z, z)

    def _check_state(self, state, batch, dtype):
        if not (isinstance(state, (tuple, list)) and len(state) == 2):
            raise ValueError("the LSTM initial_state must be a pair (h, c)")
        return tuple(RecurrentLayer._check_state(self, s, batch, dtype) for s in state)

    def _cell(self, xp, state, dtype):
        return ops.lstm_cell(state, xp, self._param(self.w_hh, dtype),
                             self._param(self.b_hh, dtype))

    def _scan_with(self, xp, state, mask, w_hh, b_hh):
        return ops.lstm_scan(xp, state, w_hh, b_hh, mask, unroll=self.unroll, remat=self.remat)


class TanhRNNLayer(RecurrentLayer):
    """One Elman tanh-RNN layer: ``h_t = tanh(x W_ih + b_ih + h W_hh + b_hh)``."""

    blocks = 1

    def _cell(self, xp, state, dtype):
        return ops.tanh_rnn_cell(state, xp, self._param(self.w_hh, dtype),
                                 self._param(self.b_hh, dtype))

    def _scan_with(self, xp, state, mask, w_hh, b_hh):
        return ops.tanh_rnn_scan(xp, state, w_hh, b_hh, mask, unroll=self.unroll,
                                 remat=self.remat)


class MinGRULayer(RecurrentLayer):
    """One minGRU layer (Feng et al. 2024): input-only gates, no recurrent weights.

    ``mode``: ``"parallel"`` (log-space associative scan), ``"chunked"`` (linear-space
    scans within and across chunks of ``chunk`` steps, :func:`grux.ops.mingru_chunked`),
    ``"sequential"`` (a step-by-step scan; all three give the same results) or ``"auto"``
    (default): sequential on CPU, where it measured fastest for forward+backward
    (``scripts/benchmark_rnn.py``; chunked is the fastest forward there), parallel on
    accelerators.
    """

    blocks = 2
    has_recurrent_weights = False
    MODES = ("auto", "parallel", "chunked", "sequential")

    def __init__(self, in_features: int, hidden_features: int, *, mode: str = "auto",
                 chunk: int = 64, **kwargs):
        if mode not in self.MODES:
            raise ValueError(f"minGRU mode must be one of {self.MODES}, got {mode!r}")
        if chunk < 1:
            raise ValueError(f"minGRU chunk must be >= 1, got {chunk}")
        self.mode = mode
        self.chunk = chunk
        kwargs.pop("recurrent_init", None)
        super().__init__(in_features, hidden_features, **kwargs)

    def _cell(self, xp, state, dtype):
        return ops.mingru_cell(state, xp)

    def _scan(self, xp, state, mask, dtype):
        mode = self.mode
        if mode == "auto":
            mode = "sequential" if jax.default_backend() == "cpu" else "parallel"
        if mode == "parallel":
            return ops.mingru_parallel(xp, state, mask)
        if mode == "chunked":
            return ops.mingru_chunked(xp, state, mask, chunk=self.chunk)
        return ops.mingru_sequential(xp, state, mask, unroll=self.unroll)


LAYERS: dict[str, type[RecurrentLayer]] = {
    "gru": GRULayer, "lstm": LSTMLayer, "tanh": TanhRNNLayer, "mingru": MinGRULayer}


class Bidirectional(nnx.Module):
    """Run ``forward`` left-to-right and ``backward`` right-to-left (within each sequence's
    length) and concatenate their outputs on the feature axis.

    ``initial_state`` is a pair ``(forward_state, backward_state)``; the final state is the
    pair of final states, the backward one taken after reading each sequence's first step.

    ``fuse=True`` computes the same function as ONE scan over both directions
    (:func:`grux.ops.bidirectional_scan`): the two input projections are one matmul
    ``x [W_ih→ | W_ih←]``, and every step advances both directions with one batched
    recurrent matmul on the stacked ``(2, H, G·H)`` recurrent weights, so the layer takes
    ``T`` sequential steps instead of ``2T``. Parameters stay in the two layers (the same
    checkpoints, interop and initialisation either way); the two layers must be of one kind
    with the same options (:meth:`RecurrentLayer.fusion_signature`), and have recurrent
    weights (not minGRU). Outputs and gradients equal the two-scan form's to float rounding.
    """

    def __init__(self, forward: RecurrentLayer, backward: RecurrentLayer, *,
                 fuse: bool = False):
        if forward.in_features != backward.in_features:
            raise ValueError("forward and backward layers must share in_features")
        if fuse:
            if not forward.has_recurrent_weights:
                raise ValueError(f"fuse=True needs layers with recurrent weights (gru, lstm, "
                                 f"tanh); {type(forward).__name__} has none")
            if forward.fusion_signature() != backward.fusion_signature():
                raise ValueError("fuse=True needs forward and backward layers of one kind "
                                 "with the same sizes and options, got "
                                 f"{forward.fusion_signature()} and "
                                 f"{backward.fusion_signature()}")
        self.forward = forward
        self.backward = backward
        self.fuse = fuse

    def __call__(self, x, *, lengths=None, mask=None, initial_state=None, time_major=False):
        s_f, s_b = (None, None) if initial_state is None else initial_state
        if self.fuse:
            return self._fused(x, lengths, mask, s_f, s_b, time_major)
        kw = dict(lengths=lengths, mask=mask, time_major=time_major)
        out_f, fin_f = self.forward(x, initial_state=s_f, **kw)
        out_b, fin_b = self.backward(x, initial_state=s_b, reverse=True, **kw)
        return jnp.concatenate([out_f, out_b], axis=-1), (fin_f, fin_b)

    def _fused(self, x, lengths, mask, s_f, s_b, time_major):
        f, b = self.forward, self.backward
        x_tm, mask_tm, dtype = f._prepare(x, lengths, mask, time_major)
        t, batch = x_tm.shape[:2]
        s_f = f._state_or_zeros(s_f, batch, dtype)
        s_b = b._state_or_zeros(s_b, batch, dtype)
        w_ih = jnp.concatenate([f._param(f.w_ih, dtype), b._param(b.w_ih, dtype)], axis=1)
        xp = x_tm.reshape(t * batch, -1) @ w_ih          # both projections: one matmul
        if f.b_ih is not None:
            xp = xp + jnp.concatenate([f._param(f.b_ih, dtype), b._param(b.b_ih, dtype)])
        xp_f, xp_b = jnp.split(xp.reshape(t, batch, -1), 2, axis=-1)
        (w_f, bias_f), (w_b, bias_b) = f._recurrent_params(dtype), b._recurrent_params(dtype)
        w_hh = jnp.stack([w_f, w_b])
        b_hh = None if bias_f is None else jnp.stack([bias_f, bias_b])
        out_f, out_b, fin_f, fin_b = ops.bidirectional_scan(
            lambda xp, s, m: f._scan_with(xp, s, m, w_hh, b_hh), xp_f, xp_b, s_f, s_b,
            mask_tm)
        out = jnp.concatenate([out_f, out_b], axis=-1)
        return (out if time_major else jnp.swapaxes(out, 0, 1)), (fin_f, fin_b)


# folded into the stack's key for the recurrent-weight masks, apart from the keys that the
# inter-layer dropout (fold_in(key, layer)) and the tasks' own dropouts derive from it
_WEIGHT_DROP_STREAM = 0x57_44_52  # "WDR"


class Recurrent(nnx.Module):
    """A stack of recurrent layers, like ``torch.nn.GRU``/``nn.LSTM``/``nn.RNN``.

    Args:
      cell: "gru", "lstm", "tanh" or "mingru".
      in_features, hidden_features: input and hidden sizes.
      num_layers: stacked layers; layer ``l > 0`` reads layer ``l − 1``'s outputs.
      bidirectional: two directions per layer, outputs concatenated (``2H`` features).
      dropout: dropout rate on the outputs of every layer except the last (as PyTorch).
      variational_dropout: one dropout mask per sequence, shared by all time steps (Gal &
        Ghahramani 2016, "locked" dropout) instead of a fresh mask per step and unit.
      weight_dropout: DropConnect on the recurrent weights (Wan et al. 2013; the
        "weight-dropped" RNN of Merity et al. 2018): in training, every entry of each
        layer's ``W_hh`` is zeroed with this probability and the rest scaled by
        ``1 / (1 − weight_dropout)``, one mask per layer and call, shared by all sequences
        and time steps; like ``dropout``, off in a ``deterministic`` view. Unidirectional
        stacks of cells with recurrent weights only.
      fuse_directions: run both directions of each bidirectional layer as one scan with a
        batched recurrent matmul (:class:`Bidirectional` ``fuse=True``; same results, same
        parameters). Default off until measured faster (docs/speed.md); ignored by
        unidirectional stacks; not for "mingru", which has no recurrent weights.
      **layer_kwargs: passed to every layer (``formulation``, ``backward``, ``dtype``,
        ``param_dtype``, ``unroll``, ``remat``, initialisers, ``forget_bias``, ``mode``).

    Call: ``(outputs, final_state) = stack(x, lengths=..., mask=..., initial_state=...,
    time_major=...)``; states are ``(num_layers · num_directions, B, H)`` (a pair of those
    for the LSTM), ordered layer 0 forward, layer 0 backward, layer 1 forward, ...
    """

    def __init__(self, cell: str, in_features: int, hidden_features: int, *,
                 num_layers: int = 1, bidirectional: bool = False, dropout: float = 0.0,
                 variational_dropout: bool = False, fuse_directions: bool = False,
                 weight_dropout: float = 0.0, rngs: nnx.Rngs, **layer_kwargs):
        if cell not in LAYERS:
            raise ValueError(f"cell must be one of {sorted(LAYERS)}, got {cell!r}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if not 0.0 <= weight_dropout < 1.0:
            raise ValueError(f"weight_dropout must be in [0, 1), got {weight_dropout}")
        if weight_dropout > 0 and (bidirectional or not LAYERS[cell].has_recurrent_weights):
            raise ValueError(f"weight_dropout needs a unidirectional stack of a cell with "
                             f"recurrent weights, got cell {cell!r}, "
                             f"bidirectional={bidirectional}")
        self.weight_drop = (nnx.Dropout(weight_dropout, rngs=rngs) if weight_dropout > 0
                            else None)
        self.cell = cell
        self.in_features = in_features
        self.hidden_features = hidden_features
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        self.fuse_directions = bool(fuse_directions and bidirectional)
        layer_cls = LAYERS[cell]
        layers = []
        for l in range(num_layers):
            fin = in_features if l == 0 else hidden_features * self.num_directions
            make = lambda: layer_cls(fin, hidden_features, rngs=rngs, **layer_kwargs)
            layers.append(Bidirectional(make(), make(), fuse=self.fuse_directions)
                          if bidirectional else make())
        self.layers = nnx.List(layers)
        self.variational_dropout = variational_dropout
        self.dropout = (nnx.Dropout(dropout, broadcast_dims=(1,) if variational_dropout else (),
                                    rngs=rngs) if dropout > 0 else None)

    def directions(self, layer: int) -> list[RecurrentLayer]:
        """The per-direction layers of stack layer ``layer`` (forward first)."""
        m = self.layers[layer]
        return [m.forward, m.backward] if self.bidirectional else [m]

    def initial_state(self, batch: int, dtype: Any = None) -> Any:
        """Zero state in the stacked layout."""
        return _stack_states([d.initial_state(batch, dtype)
                              for l in range(self.num_layers) for d in self.directions(l)])

    def __call__(self, x, *, lengths=None, mask=None, initial_state=None, time_major=False,
                 rngs: nnx.Rngs | jax.Array | None = None):
        """Run the stack; ``rngs`` (an ``nnx.Rngs`` or a key) overrides the dropout stream,
        which is how a functional training step gives every step fresh dropout masks."""
        n = self.num_layers * self.num_directions
        per_dir = None if initial_state is None else _unstack_states(initial_state, n)
        finals = []
        h = x
        for l in range(self.num_layers):
            kw = dict(lengths=lengths, mask=mask, time_major=time_major)
            if self.bidirectional:
                s = None if per_dir is None else (per_dir[2 * l], per_dir[2 * l + 1])
                h, (ff, fb) = self.layers[l](h, initial_state=s, **kw)
                finals += [ff, fb]
            else:
                s = None if per_dir is None else per_dir[l]
                if self.weight_drop is not None:
                    key = (jax.random.fold_in(jax.random.fold_in(rngs, _WEIGHT_DROP_STREAM), l)
                           if isinstance(rngs, jax.Array) else rngs)
                    kw["recurrent_weights"] = functools.partial(self.weight_drop, rngs=key)
                h, f = self.layers[l](h, initial_state=s, **kw)
                finals.append(f)
            if self.dropout is not None and l < self.num_layers - 1:
                key = jax.random.fold_in(rngs, l) if isinstance(rngs, jax.Array) else rngs
                swap = time_major and self.variational_dropout  # mask broadcast over time
                h = jnp.swapaxes(h, 0, 1) if swap else h
                h = self.dropout(h, rngs=key)
                h = jnp.swapaxes(h, 0, 1) if swap else h
        return h, _stack_states(finals)

    def step(self, x_t: Array, state: Any = None) -> tuple[Array, Any]:
        """One time step of a unidirectional stack (autoregressive decoding, sampling):
        ``x_t (B, F)``, ``state`` in the stacked layout (``None``: zeros) →
        ``(output of the last layer (B, H), new state)``; the same arithmetic as running
        the stack on a one-step sequence. Inter-layer dropout is not applied (inference)."""
        if self.bidirectional:
            raise ValueError("a bidirectional stack reads whole sequences; it cannot step")
        batch = jnp.shape(x_t)[0]
        state = self.initial_state(batch) if state is None else state
        per_layer = _unstack_states(state, self.num_layers)
        finals, h = [], x_t
        for l in range(self.num_layers):
            h, new = self.layers[l].step(h, per_layer[l])
            finals.append(new)
        return h, _stack_states(finals)


def _stack_states(states: list) -> Any:
    if isinstance(states[0], tuple):
        return tuple(jnp.stack(parts) for parts in zip(*states))
    return jnp.stack(states)


def _unstack_states(state: Any, n: int) -> list:
    parts = state if isinstance(state, tuple) else (state,)
    for p in parts:
        if jnp.ndim(p) != 3 or jnp.shape(p)[0] != n:
            raise ValueError(f"initial_state must have shape (num_layers*num_directions={n}, "
                             f"batch, hidden), got {jnp.shape(p)}")
    if isinstance(state, tuple):
        return [tuple(p[i] for p in state) for i in range(n)]
    return [state[i] for i in range(n)]


def _stack_class(cell: str, doc: str):
    class _Stack(Recurrent):
        def __init__(self, in_features: int, hidden_features: int, **kwargs):
            super().__init__(cell, in_features, hidden_features, **kwargs)
    _Stack.__doc__ = doc
    return _Stack


GRU = _stack_class("gru", "Multi-layer (bidirectional) GRU stack; see :class:`Recurrent`.")
GRU.__name__ = GRU.__qualname__ = "GRU"
LSTM = _stack_class("lstm", "Multi-layer (bidirectional) LSTM stack; see :class:`Recurrent`.")
LSTM.__name__ = LSTM.__qualname__ = "LSTM"
TanhRNN = _stack_class("tanh", "Multi-layer tanh-RNN stack; see :class:`Recurrent`.")
TanhRNN.__name__ = TanhRNN.__qualname__ = "TanhRNN"
MinGRU = _stack_class("mingru", "Multi-layer minGRU stack; see :class:`Recurrent`.")
MinGRU.__name__ = MinGRU.__qualname__ = "MinGRU"
