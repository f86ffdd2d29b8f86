"""The one way from ``config.model`` to a recurrent stack, and the fields and checks that
every task with a recurrent model shares."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from grux.nn import Recurrent
from grux.nn.recurrent import LAYERS, MinGRULayer
from grux.ops.gru import BACKWARDS, FORMULATIONS


def uniform_init(module: nnx.Module, key, scale: float) -> None:
    """Redraw every parameter of ``module`` from ``U(−scale, scale)``, in place (Zaremba et
    al.'s init; PyTorch's default for ``nn.Linear`` and ``nn.GRU/LSTM/RNN`` with
    ``scale = 1/√fan_in``)."""
    graphdef, params, rest = nnx.split(module, nnx.Param, ...)
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    new = [jax.random.uniform(k, x.shape, x.dtype, -scale, scale) for x, k in zip(leaves, keys)]
    nnx.update(module, jax.tree.unflatten(treedef, new))


CELLS = tuple(LAYERS)  # gru, lstm, tanh, mingru
DTYPES = {"float32": None, "bfloat16": jnp.bfloat16}  # compute dtype; parameters stay f32


def recurrent_model_config(**fields) -> dict:
    """The ``model`` section of a recurrent task (defaults: a one-layer Cho-formulation GRU
    of 64 units), plus task-specific ``fields`` (which may also override the defaults)."""
    return {"cell": "gru",            # gru | lstm | tanh | mingru
            "formulation": "cho",     # GRU only: cho (Cho 2014) | cudnn (PyTorch/cuDNN)
            "hidden": 64, "num_layers": 1,
            "dropout": 0.0,           # between stacked layers
            "weight_dropout": 0.0,    # DropConnect on the recurrent weights W_hh in training,
                                      # one mask per update (Merity et al. 2018's weight-dropped
                                      # RNN); unidirectional gru / lstm / tanh stacks
            "backward": "custom",     # GRU only: custom (cuDNN-style VJP) | autodiff
            "remat": False,           # recompute the recurrent pre-activations in backward
            "unroll": 1,              # time steps per scan iteration
            "fuse_directions": False,  # bidirectional gru/lstm/tanh stacks: both directions
                                       # in one scan (batched recurrent matmul, T steps
                                       # instead of 2T; same results; off until measured
                                       # faster, see docs/speed.md)
            "dtype": "float32",       # compute dtype: float32 | bfloat16 (mixed precision:
                                      # parameters and optimizer state stay float32)
            "mingru_mode": "auto",    # minGRU only: auto | parallel | chunked | sequential
            "mingru_chunk": 64,       # minGRU only: steps per chunk of mode "chunked"
            **fields}


def validate_recurrent_model(m: ml_collections.ConfigDict) -> None:
    """Checks shared by tasks whose ``config.model`` describes a recurrent stack."""
    if m.cell not in CELLS:
        raise ValueError(f"config.model.cell must be one of {CELLS}, got {m.cell!r}")
    if m.formulation not in FORMULATIONS:
        raise ValueError(f"config.model.formulation must be one of {FORMULATIONS}, got "
                         f"{m.formulation!r}")
    if m.backward not in BACKWARDS:
        raise ValueError(f"config.model.backward must be one of {BACKWARDS}, got "
                         f"{m.backward!r}")
    if m.dtype not in DTYPES:
        raise ValueError(f"config.model.dtype must be one of {tuple(DTYPES)}, got "
                         f"{m.dtype!r}")
    if m.mingru_mode not in MinGRULayer.MODES:
        raise ValueError(f"config.model.mingru_mode must be one of {MinGRULayer.MODES}, got "
                         f"{m.mingru_mode!r}")
    for field in ("hidden", "num_layers", "unroll", "mingru_chunk"):
        if m[field] < 1:
            raise ValueError(f"config.model.{field} must be >= 1, got {m[field]}")
    if not 0.0 <= m.dropout < 1.0:
        raise ValueError(f"config.model.dropout must be in [0, 1), got {m.dropout}")
    if not 0.0 <= m.weight_dropout < 1.0:
        raise ValueError(f"config.model.weight_dropout must be in [0, 1), got "
                         f"{m.weight_dropout}")
    if m.weight_dropout > 0 and not LAYERS[m.cell].has_recurrent_weights:
        raise ValueError(f"config.model.weight_dropout drops recurrent weights, which cell "
                         f"{m.cell!r} does not have; set it to 0")
    if not isinstance(m.fuse_directions, bool):
        raise ValueError(f"config.model.fuse_directions must be True or False, got "
                         f"{m.fuse_directions!r}")


def layer_options(m: ml_collections.ConfigDict, cell: str | None = None) -> dict:
    """The per-layer options of ``config.model`` for ``cell`` (default ``m.cell``)."""
    cell = cell or m.cell
    out = {"dtype": DTYPES[m.dtype], "unroll": m.unroll}
    if cell != "mingru":
        out["remat"] = m.remat
    if cell == "gru":
        out.update(formulation=m.formulation, backward=m.backward)
    if cell == "mingru":
        out.update(mode=m.mingru_mode, chunk=m.mingru_chunk)
    return out


def build_recurrent(m: ml_collections.ConfigDict, in_features: int, rngs: nnx.Rngs, *,
                    cell: str | None = None, bidirectional: bool = False,
                    variational_dropout: bool = False) -> Recurrent:
    """The recurrent stack ``config.model`` describes: ``m.cell`` (or ``cell``),
    ``m.hidden`` units, ``m.num_layers`` layers with ``m.dropout`` between them, and the
    layer options (formulation, backward, remat, unroll, compute dtype); a bidirectional
    stack runs both directions of each layer as one scan when ``m.fuse_directions`` (cells
    with recurrent weights; minGRU, which has none, ignores it like the GRU-only options)."""
    cell = cell or m.cell
    return Recurrent(cell, in_features, m.hidden, num_layers=m.num_layers,
                     bidirectional=bidirectional, dropout=m.dropout,
                     weight_dropout=m.weight_dropout,
                     variational_dropout=variational_dropout,
                     fuse_directions=(bidirectional and m.fuse_directions
                                      and LAYERS[cell].has_recurrent_weights), rngs=rngs,
                     **layer_options(m, cell))
