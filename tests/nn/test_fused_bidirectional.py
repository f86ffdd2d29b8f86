"""Bidirectional layers and stacks with ``fuse=True`` / ``fuse_directions=True`` (both
directions in one scan) against the two-scan form: outputs, final states and gradients
w.r.t. every parameter, the input and the initial states."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from grux.nn import GRU, Bidirectional, GRULayer, LSTMLayer, MinGRULayer, TanhRNNLayer

B, T, F, H = 4, 6, 3, 5
LENGTHS = np.array([6, 3, 0, 1])     # full length, partial, empty, one step

CASES = {
    "gru-cudnn": lambda r: GRULayer(F, H, rngs=r),
    "gru-cho-autodiff": lambda r: GRULayer(F, H, formulation="cho", backward="autodiff",
                                           rngs=r),
    "gru-cho-unroll2": lambda r: GRULayer(F, H, formulation="cho", unroll=2, rngs=r),
    "lstm": lambda r: LSTMLayer(F, H, rngs=r),
    "tanh": lambda r: TanhRNNLayer(F, H, rngs=r),
}


def _randomize(module, seed):
    """Random biases (the defaults are zero), different in every layer and direction."""
    rng = np.random.default_rng(seed)
    for _, p in nnx.iter_graph(module):
        if isinstance(p, nnx.Param) and p[...].ndim == 1:
            p[...] = jnp.asarray(rng.normal(0, 0.3, p[...].shape), p[...].dtype)
    return module


def _padded_input(rng, lengths):
    x = rng.normal(size=(B, T, F)).astype(np.float32)
    for b, n in enumerate(lengths):
        x[b, n:] = 1e3                   # garbage in the padding must not leak anywhere
    return jnp.asarray(x)


def _grads_and_results(graphdef, params, x, s0, call):
    """Gradients of a loss on all outputs and final states w.r.t. (params, x, s0)."""
    def loss(params, x, s0):
        out, fin = call(nnx.merge(graphdef, params), x, s0)
        leaves = jax.tree.leaves(fin)
        return (jnp.sum(jnp.sin(out) * jnp.linspace(-1.0, 2.0, out.shape[-1]))
                + sum(jnp.sum(jnp.cos(s) * (i + 1)) for i, s in enumerate(leaves))), (out, fin)
    return jax.jit(jax.grad(loss, argnums=(0, 1, 2), has_aux=True))(params, x, s0)


def _assert_trees_close(got, want, atol=3e-6):
    got_l, want_l = jax.tree.leaves(got), jax.tree.leaves(want)
    assert len(got_l) == len(want_l) > 0
    for g, w in zip(got_l, want_l):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=atol)


@pytest.mark.parametrize("case", sorted(CASES))
def test_fused_layer_equals_two_scans(rng, case):
    rngs = nnx.Rngs(0)
    fwd, bwd = _randomize(CASES[case](rngs), 1), _randomize(CASES[case](rngs), 2)
    two, one = Bidirectional(fwd, bwd), Bidirectional(fwd, bwd, fuse=True)   # shared params
    x = _padded_input(rng, LENGTHS)
    z = lambda: jnp.asarray(rng.normal(size=(B, H)).astype(np.float32))
    s0 = ((z(), z()), (z(), z())) if case == "lstm" else (z(), z())
    if case == "gru-cudnn":       # time-major with an explicit mask takes the same path
        x = jnp.swapaxes(x, 0, 1)
        mask = jnp.asarray(np.arange(T)[:, None] < LENGTHS[None])
        call = lambda m, x, s0: m(x, mask=mask, initial_state=s0, time_major=True)
    else:
        lengths = jnp.asarray(LENGTHS, jnp.int32)
        call = lambda m, x, s0: m(x, lengths=lengths, initial_state=s0)
    g_two, params = nnx.split(two)
    g_one, params_one = nnx.split(one)
    _assert_trees_close(params_one, params)          # the same parameters, same layout
    want = _grads_and_results(g_two, params, x, s0, call)
    got = _grads_and_results(g_one, params, x, s0, call)
    _assert_trees_close(got, want)
    (out, _), grads = got[1], got[0]
    out = jnp.swapaxes(out, 0, 1) if case == "gru-cudnn" else out
    assert not np.asarray(out[2]).any() and not np.asarray(out[1, 3:]).any()  # padding
    for leaf in jax.tree.leaves(grads[0]) + jax.tree.leaves(grads[2]):
        assert float(jnp.max(jnp.abs(leaf))) > 1e-3            # every gradient flows


@pytest.mark.parametrize("backward", ["custom", "autodiff"])
def test_fused_two_layer_stack_equals_two_scans(rng, backward):
    kw = dict(num_layers=2, bidirectional=True, backward=backward, rngs=nnx.Rngs(3))
    model = _randomize(GRU(F, H, **kw), 4)
    fused = GRU(F, H, fuse_directions=True, **{**kw, "rngs": nnx.Rngs(3)})
    assert fused.fuse_directions and all(fused.layers[l].fuse for l in range(2))
    g_two, params = nnx.split(model)
    g_one, _ = nnx.split(fused)
    x = _padded_input(rng, LENGTHS)
    s0 = jnp.asarray(rng.normal(size=(4, B, H)).astype(np.float32))
    lengths = jnp.asarray(LENGTHS, jnp.int32)
    call = lambda m, x, s0: m(x, lengths=lengths, initial_state=s0)
    want = _grads_and_results(g_two, params, x, s0, call)
    got = _grads_and_results(g_one, params, x, s0, call)
    _assert_trees_close(got, want)


def test_fusion_needs_matching_layers_with_recurrent_weights():
    r = nnx.Rngs(0)
    with pytest.raises(ValueError, match="recurrent weights"):
        Bidirectional(MinGRULayer(F, H, rngs=r), MinGRULayer(F, H, rngs=r), fuse=True)
    with pytest.raises(ValueError, match="one kind with the same sizes and options"):
        Bidirectional(GRULayer(F, H, rngs=r), GRULayer(F, H, backward="autodiff", rngs=r),
                      fuse=True)
    with pytest.raises(ValueError, match="one kind"):
        Bidirectional(GRULayer(F, H, rngs=r), LSTMLayer(F, H, rngs=r), fuse=True)
    # a unidirectional stack has nothing to fuse
    assert not GRU(F, H, fuse_directions=True, rngs=r).fuse_directions
