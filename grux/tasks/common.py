"""Config fields and checks shared by tasks whose ``config.model`` is a recurrent stack."""
from __future__ import annotations

import ml_collections

CELLS = ("gru", "lstm", "tanh", "mingru")


def validate_recurrent_model(m: ml_collections.ConfigDict) -> None:
    """Checks shared by tasks whose ``config.model`` describes a recurrent stack."""
    if m.cell not in CELLS:
        raise ValueError(f"config.model.cell must be one of {CELLS}, got {m.cell!r}")
    if m.formulation not in ("cho", "cudnn"):
        raise ValueError(f"config.model.formulation must be 'cho' or 'cudnn', got "
                         f"{m.formulation!r}")
    for field in ("hidden", "num_layers"):
        if m[field] < 1:
            raise ValueError(f"config.model.{field} must be >= 1, got {m[field]}")
    if not 0.0 <= m.dropout < 1.0:
        raise ValueError(f"config.model.dropout must be in [0, 1), got {m.dropout}")


def recurrent_model_config(**fields) -> dict:
    """The ``model`` section of a recurrent task: cell, GRU formulation, width, depth and
    inter-layer dropout (defaults: a one-layer Cho-formulation GRU of 64 units), plus
    task-specific ``fields`` (which may also override the defaults)."""
    return {"cell": "gru",            # gru | lstm | tanh | mingru
            "formulation": "cho",     # GRU only: cho (Cho 2014) | cudnn (PyTorch/cuDNN)
            "hidden": 64, "num_layers": 1, "dropout": 0.0, **fields}


def recurrent_layer_kwargs(model_config: ml_collections.ConfigDict) -> dict:
    """Cell-specific layer options from ``config.model``."""
    return {"formulation": model_config.formulation} if model_config.cell == "gru" else {}
