"""PyTorch state-dict and flax linen GRUCell interop."""
import importlib.util

import flax.linen as linen
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import reference as ref
from grux.nn import (GRU, LSTM, GRULayer, MinGRU, TanhRNN, linen_gru_params,
                     load_linen_gru_params, load_torch_state_dict, torch_state_dict)

B, T, F, H = 3, 5, 4, 6
HAS_TORCH = importlib.util.find_spec("torch") is not None


def _torch_like_state_dict(rng, blocks, num_layers, bidirectional):
    """A state dict in torch.nn.GRU/LSTM/RNN layout, made with NumPy."""
    sd = {}
    for l in range(num_layers):
        fin = F if l == 0 else H * (2 if bidirectional else 1)
        for sfx in ([""] + (["_reverse"] if bidirectional else [])):
            sd[f"weight_ih_l{l}{sfx}"] = rng.normal(0, .4, (blocks * H, fin)).astype(np.float32)
            sd[f"weight_hh_l{l}{sfx}"] = rng.normal(0, .4, (blocks * H, H)).astype(np.float32)
            sd[f"bias_ih_l{l}{sfx}"] = rng.normal(0, .2, blocks * H).astype(np.float32)
            sd[f"bias_hh_l{l}{sfx}"] = rng.normal(0, .2, blocks * H).astype(np.float32)
    return sd


@pytest.mark.parametrize("cls,blocks,ref_cell", [(GRU, 3, ref.gru_cudnn), (LSTM, 4, ref.lstm),
                                                 (TanhRNN, 1, ref.tanh_rnn)])
def test_load_torch_layout_computes_pytorch_equations(rng, cls, blocks, ref_cell):
    sd = _torch_like_state_dict(rng, blocks, 1, False)
    model = load_torch_state_dict(cls(F, H, rngs=nnx.Rngs(0)), sd)
    x = rng.normal(size=(B, T, F)).astype(np.float32)
    p = {k.replace("_l0", ""): np.float64(v) for k, v in sd.items()}
    s0 = (np.zeros((B, H)),) * 2 if cls is LSTM else np.zeros((B, H))
    want, _ = ref.run(ref_cell(p), np.float64(x), np.full(B, T), s0)
    out, _ = model(x)
    np.testing.assert_allclose(out, want, atol=3e-6)


def test_torch_state_dict_round_trip(rng):
    sd = _torch_like_state_dict(rng, 3, 2, True)
    model = load_torch_state_dict(GRU(F, H, num_layers=2, bidirectional=True,
                                      rngs=nnx.Rngs(0)), sd)
    back = torch_state_dict(model)
    assert sorted(back) == sorted(sd)
    for k in sd:
        np.testing.assert_array_equal(back[k], sd[k])


def test_torch_state_dict_errors_name_the_key(rng):
    sd = _torch_like_state_dict(rng, 3, 2, False)
    model = GRU(F, H, num_layers=2, rngs=nnx.Rngs(0))
    bad = dict(sd)
    del bad["weight_hh_l1"]
    with pytest.raises(ValueError, match="weight_hh_l1"):
        load_torch_state_dict(model, bad)
    bad = dict(sd, bias_ih_l0=np.zeros(5, np.float32))
    with pytest.raises(ValueError, match=r"bias_ih_l0.*\(5,\).*\(18,\)"):
        load_torch_state_dict(model, bad)
    with pytest.raises(ValueError, match="weight_ih_l2"):
        load_torch_state_dict(model, dict(sd, weight_ih_l2=np.zeros(1)))
    with pytest.raises(ValueError, match="cho"):
        load_torch_state_dict(GRU(F, H, num_layers=2, formulation="cho", rngs=nnx.Rngs(0)), sd)
    with pytest.raises(ValueError, match="no PyTorch equivalent"):
        torch_state_dict(MinGRU(F, H, rngs=nnx.Rngs(0)))


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed (optional)")
def test_matches_real_torch_gru(rng):
    import torch
    t = torch.nn.GRU(F, H, num_layers=2, bidirectional=True, batch_first=True)
    model = load_torch_state_dict(GRU(F, H, num_layers=2, bidirectional=True, rngs=nnx.Rngs(0)),
                                  {k: v.detach().numpy() for k, v in t.state_dict().items()})
    x = rng.normal(size=(B, T, F)).astype(np.float32)
    o_t, h_t = t(torch.from_numpy(x))
    o, h = model(x)
    np.testing.assert_allclose(o, o_t.detach().numpy(), atol=2e-6)
    np.testing.assert_allclose(h, h_t.detach().numpy(), atol=2e-6)


def _linen_run(params, x):
    rnn = linen.RNN(linen.GRUCell(features=H))
    return rnn.apply({"params": {"cell": params}}, x)


def test_cudnn_gru_matches_linen_rnn_gru_cell_both_ways(rng):
    x = jnp.asarray(rng.normal(size=(B, T, F)).astype(np.float32))
    # linen -> grux
    rnn = linen.RNN(linen.GRUCell(features=H))
    variables = rnn.init(jax.random.PRNGKey(1), x)
    cell_params = jax.tree.map(lambda a: a + 0.1 * jax.random.normal(jax.random.PRNGKey(2),
                                                                      a.shape),
                               variables["params"]["cell"])   # non-zero biases
    want = _linen_run(cell_params, x)
    layer = load_linen_gru_params(GRULayer(F, H, rngs=nnx.Rngs(0)), cell_params)
    got, _ = layer(x)
    np.testing.assert_allclose(got, want, atol=2e-6)
    # grux (with all six biases non-zero) -> linen
    layer2 = GRULayer(F, H, rngs=nnx.Rngs(5))
    layer2.b_ih[...] = jnp.asarray(rng.normal(0, .3, 3 * H), jnp.float32)
    layer2.b_hh[...] = jnp.asarray(rng.normal(0, .3, 3 * H), jnp.float32)
    got2, _ = layer2(x)
    want2 = _linen_run(jax.tree.map(jnp.asarray, linen_gru_params(layer2)), x)
    np.testing.assert_allclose(got2, want2, atol=2e-6)


def test_linen_errors(rng):
    layer = GRULayer(F, H, rngs=nnx.Rngs(0))
    params = linen_gru_params(layer)
    del params["hn"]["bias"]
    with pytest.raises(ValueError, match="hn/bias"):
        load_linen_gru_params(layer, params)
    params = linen_gru_params(layer)
    params["iz"]["kernel"] = np.zeros((F + 1, H))
    with pytest.raises(ValueError, match="iz/kernel"):
        load_linen_gru_params(layer, params)
    with pytest.raises(ValueError, match="cudnn"):
        linen_gru_params(GRULayer(F, H, formulation="cho", rngs=nnx.Rngs(0)))
