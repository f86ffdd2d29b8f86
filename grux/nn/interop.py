"""Parameter interop: PyTorch ``state_dict`` layouts and flax linen ``GRUCell``.

Everything is plain NumPy, so no ``torch`` import is needed: pass
``{k: v.numpy() for k, v in torch_module.state_dict().items()}``.

PyTorch keeps ``weight_ih_l{k}[_reverse]: (G·H, F)``, ``weight_hh_l{k}[_reverse]: (G·H, H)``,
``bias_ih_…, bias_hh_…: (G·H,)`` with gate order r, z, n (GRU) / i, f, g, o (LSTM); grux keeps
the transposes ``(F, G·H)``, ``(H, G·H)`` in the same gate order. Only the "cudnn" GRU
formulation computes what ``torch.nn.GRU`` computes, so only it converts.

flax linen ``GRUCell`` (cuDNN form) keeps six Dense layers ``ir, iz, in`` (kernel + bias) and
``hr, hz`` (kernel) and ``hn`` (kernel + bias); its r and z gates have one bias each, so
exporting folds grux's ``b_hr, b_hz`` into ``b_ir, b_iz`` (same function).
"""
from __future__ import annotations

from typing import Mapping

import jax.numpy as jnp
import numpy as np

from grux.nn.recurrent import GRULayer, LSTMLayer, Recurrent, TanhRNNLayer

_TORCH_CELLS = (GRULayer, LSTMLayer, TanhRNNLayer)


def _check_torch_compatible(layer) -> None:
    if not isinstance(layer, _TORCH_CELLS):
        raise ValueError(f"{type(layer).__name__} has no PyTorch equivalent")
    if isinstance(layer, GRULayer) and layer.formulation != "cudnn":
        raise ValueError("only the 'cudnn' GRU formulation matches torch.nn.GRU "
                         f"(this layer uses {layer.formulation!r})")
    if layer.b_ih is None or layer.b_hh is None:
        raise ValueError("PyTorch layouts need both bias vectors (use_bias=True)")


def _torch_names(model: Recurrent):
    for l in range(model.num_layers):
        for d, layer in enumerate(model.directions(l)):
            yield f"l{l}" + ("_reverse" if d else ""), layer


def torch_state_dict(model: Recurrent) -> dict[str, np.ndarray]:
    """Export a :class:`Recurrent` stack as a ``torch.nn.GRU/LSTM/RNN`` state dict (NumPy)."""
    out = {}
    for sfx, layer in _torch_names(model):
        _check_torch_compatible(layer)
        out[f"weight_ih_{sfx}"] = np.asarray(layer.w_ih[...]).T.copy()
        out[f"weight_hh_{sfx}"] = np.asarray(layer.w_hh[...]).T.copy()
        out[f"bias_ih_{sfx}"] = np.asarray(layer.b_ih[...]).copy()
        out[f"bias_hh_{sfx}"] = np.asarray(layer.b_hh[...]).copy()
    return out


def _take(sd: Mapping[str, np.ndarray], key: str, shape: tuple[int, ...]) -> np.ndarray:
    if key not in sd:
        raise ValueError(f"state dict is missing key {key!r}")
    v = np.asarray(sd[key])
    if v.shape != shape:
        raise ValueError(f"state dict key {key!r} has shape {v.shape}, expected {shape}")
    return v


def load_torch_state_dict(model: Recurrent, state_dict: Mapping[str, np.ndarray]) -> Recurrent:
    """Load a ``torch.nn.GRU/LSTM/RNN`` state dict (NumPy arrays) into ``model`` in place.

    Every expected key must be present with the right shape, and no unexpected key may be
    present (like ``strict=True`` in PyTorch); errors name the key.
    """
    used = set()
    for sfx, layer in _torch_names(model):
        _check_torch_compatible(layer)
        g = layer.blocks * layer.hidden_features
        specs = {"w_ih": (f"weight_ih_{sfx}", (g, layer.in_features), True),
                 "w_hh": (f"weight_hh_{sfx}", (g, layer.hidden_features), True),
                 "b_ih": (f"bias_ih_{sfx}", (g,), False),
                 "b_hh": (f"bias_hh_{sfx}", (g,), False)}
        for attr, (key, shape, transpose) in specs.items():
            v = _take(state_dict, key, shape)
            used.add(key)
            p = getattr(layer, attr)
            p[...] = jnp.asarray(v.T if transpose else v, dtype=p[...].dtype)
    extra = sorted(set(state_dict) - used)
    if extra:
        raise ValueError(f"unexpected keys in state dict: {extra}")
    return model


def linen_gru_params(layer: GRULayer) -> dict:
    """Export a "cudnn" :class:`GRULayer` as flax linen ``GRUCell`` params (NumPy)."""
    if not isinstance(layer, GRULayer) or layer.formulation != "cudnn":
        raise ValueError("only a 'cudnn' GRULayer matches flax linen GRUCell")
    h = layer.hidden_features
    w_ih, w_hh = np.asarray(layer.w_ih[...]), np.asarray(layer.w_hh[...])
    b_ih = np.zeros(3 * h, w_ih.dtype) if layer.b_ih is None else np.asarray(layer.b_ih[...])
    b_hh = np.zeros(3 * h, w_ih.dtype) if layer.b_hh is None else np.asarray(layer.b_hh[...])
    blk = lambda a, i: a[..., i * h:(i + 1) * h]
    return {
        "ir": {"kernel": blk(w_ih, 0), "bias": blk(b_ih, 0) + blk(b_hh, 0)},
        "iz": {"kernel": blk(w_ih, 1), "bias": blk(b_ih, 1) + blk(b_hh, 1)},
        "in": {"kernel": blk(w_ih, 2), "bias": blk(b_ih, 2)},
        "hr": {"kernel": blk(w_hh, 0)},
        "hz": {"kernel": blk(w_hh, 1)},
        "hn": {"kernel": blk(w_hh, 2), "bias": blk(b_hh, 2)},
    }


def load_linen_gru_params(layer: GRULayer, params: Mapping) -> GRULayer:
    """Load flax linen ``GRUCell`` params (``{'ir': {'kernel', 'bias'}, ...}``) in place."""
    if not isinstance(layer, GRULayer) or layer.formulation != "cudnn":
        raise ValueError("only a 'cudnn' GRULayer matches flax linen GRUCell")
    if layer.b_ih is None or layer.b_hh is None:
        raise ValueError("loading linen GRUCell params needs a layer with both biases")
    params = params.get("params", params)
    f, h = layer.in_features, layer.hidden_features

    def get(name, leaf, shape):
        if name not in params or leaf not in params[name]:
            raise ValueError(f"linen GRUCell params are missing {name}/{leaf}")
        v = np.asarray(params[name][leaf])
        if v.shape != shape:
            raise ValueError(f"linen GRUCell param {name}/{leaf} has shape {v.shape}, "
                             f"expected {shape}")
        return v

    w_ih = np.concatenate([get(n, "kernel", (f, h)) for n in ("ir", "iz", "in")], axis=1)
    w_hh = np.concatenate([get(n, "kernel", (h, h)) for n in ("hr", "hz", "hn")], axis=1)
    b_ih = np.concatenate([get(n, "bias", (h,)) for n in ("ir", "iz", "in")])
    b_hh = np.concatenate([np.zeros(2 * h, b_ih.dtype), get("hn", "bias", (h,))])
    for attr, v in (("w_ih", w_ih), ("w_hh", w_hh), ("b_ih", b_ih), ("b_hh", b_hh)):
        p = getattr(layer, attr)
        p[...] = jnp.asarray(v, dtype=p[...].dtype)
    return layer
