"""LSTM, tanh-RNN and minGRU ops against the NumPy equations; minGRU parallel, chunked
(several chunk sizes, including ones that do not divide T) and sequential forms."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import reference as ref
from grux.ops import (lengths_to_mask, lstm_scan, mingru_chunked, mingru_parallel,
                      mingru_sequential, reverse_within_lengths, tanh_rnn_scan)

T, B, F, H = 6, 3, 4, 5
LENGTHS = np.array([6, 2, 0])


def _params(rng, blocks, recurrent=True):
    p = {"weight_ih": rng.normal(0, 0.5, (blocks * H, F)), "bias_ih": rng.normal(0, .2, blocks * H)}
    if recurrent:
        p["weight_hh"] = rng.normal(0, 0.5, (blocks * H, H))
        p["bias_hh"] = rng.normal(0, 0.2, blocks * H)
    return p


def _xp(p, x):
    return jnp.einsum("btf,gf->tbg", x, p["weight_ih"]) + p["bias_ih"]


def _mask():
    return jnp.asarray(np.arange(T)[:, None] < LENGTHS[None])


@pytest.mark.parametrize("masked", [False, True])
def test_lstm_matches_numpy(rng, masked):
    with jax.enable_x64(True):
        p = _params(rng, 4)
        x = rng.normal(size=(B, T, F))
        h0, c0 = rng.normal(size=(B, H)), rng.normal(size=(B, H))
        lengths = LENGTHS if masked else np.full(B, T)
        want_o, (want_h, want_c) = ref.run(ref.lstm(p), x, lengths, (h0, c0))
        out, (h, c) = lstm_scan(_xp(p, x), (jnp.asarray(h0), jnp.asarray(c0)),
                                jnp.asarray(p["weight_hh"].T), jnp.asarray(p["bias_hh"]),
                                _mask() if masked else None)
        np.testing.assert_allclose(jnp.swapaxes(out, 0, 1), want_o, atol=1e-12)
        np.testing.assert_allclose(h, want_h, atol=1e-12)
        np.testing.assert_allclose(c, want_c, atol=1e-12)


@pytest.mark.parametrize("masked", [False, True])
def test_tanh_rnn_matches_numpy(rng, masked):
    with jax.enable_x64(True):
        p = _params(rng, 1)
        x = rng.normal(size=(B, T, F))
        h0 = rng.normal(size=(B, H))
        lengths = LENGTHS if masked else np.full(B, T)
        want_o, want_h = ref.run(ref.tanh_rnn(p), x, lengths, h0)
        out, h = tanh_rnn_scan(_xp(p, x), jnp.asarray(h0), jnp.asarray(p["weight_hh"].T),
                               jnp.asarray(p["bias_hh"]), _mask() if masked else None)
        np.testing.assert_allclose(jnp.swapaxes(out, 0, 1), want_o, atol=1e-12)
        np.testing.assert_allclose(h, want_h, atol=1e-12)


def test_lstm_and_rnn_gradients(rng):
    with jax.enable_x64(True):
        p4, p1 = _params(rng, 4), _params(rng, 1)
        mask = _mask()

        def lstm_loss(xp, w, b, h0, c0):
            out, (h, c) = lstm_scan(xp, (h0, c0), w, b, mask, remat=True)
            return jnp.sum(jnp.sin(out)) + jnp.sum(h * c)

        def rnn_loss(xp, w, b, h0):
            out, h = tanh_rnn_scan(xp, h0, w, b, mask)
            return jnp.sum(jnp.sin(out)) + jnp.sum(h ** 2)

        x = rng.normal(size=(B, T, F))
        check_grads(lstm_loss, (_xp(p4, x), jnp.asarray(p4["weight_hh"].T),
                                jnp.asarray(p4["bias_hh"]), jnp.asarray(rng.normal(size=(B, H))),
                                jnp.asarray(rng.normal(size=(B, H)))), order=1, modes=["rev"])
        check_grads(rnn_loss, (_xp(p1, x), jnp.asarray(p1["weight_hh"].T),
                               jnp.asarray(p1["bias_hh"]), jnp.asarray(rng.normal(size=(B, H)))),
                    order=1, modes=["rev"])


@pytest.mark.parametrize("masked", [False, True])
def test_mingru_parallel_and_sequential_match_numpy(rng, masked):
    with jax.enable_x64(True):
        p = _params(rng, 2, recurrent=False)
        x = rng.normal(0, 2, size=(B, T, F))
        h0 = rng.normal(size=(B, H))          # any sign: h0 enters the parallel form linearly
        lengths = LENGTHS if masked else np.full(B, T)
        want_o, want_h = ref.run(ref.mingru(p), x, lengths, h0)
        mask = _mask() if masked else None
        chunked = [functools.partial(mingru_chunked, chunk=c) for c in (1, 3, T, T + 5)]
        for fn in (mingru_parallel, mingru_sequential, *chunked):
            out, h = fn(_xp(p, x), jnp.asarray(h0), mask)
            np.testing.assert_allclose(jnp.swapaxes(out, 0, 1), want_o, atol=1e-10)
            np.testing.assert_allclose(h, want_h, atol=1e-10)


@pytest.mark.parametrize("chunk", [None, 2, 4])
def test_mingru_parallel_and_chunked_gradients(rng, chunk):
    """Finite differences check the parallel form's autodiff and the chunked form's own
    backward pass (a custom VJP), with a mask."""
    fn = mingru_parallel if chunk is None else functools.partial(mingru_chunked, chunk=chunk)
    with jax.enable_x64(True):
        p = _params(rng, 2, recurrent=False)
        kp = _xp(p, rng.normal(size=(B, T, F)))
        mask = _mask()

        def loss(kp, h0):
            out, h = fn(kp, h0, mask)
            return jnp.sum(jnp.sin(out)) + jnp.sum(h ** 2)

        check_grads(loss, (kp, jnp.asarray(rng.normal(size=(B, H)))), order=1, modes=["rev"])


def test_mingru_long_sequence_stays_finite_and_equals_sequential(rng):
    t = 16384
    kp = jnp.asarray(rng.normal(0, 4, size=(t, 2, 2 * 8)).astype(np.float32))
    h0 = jnp.zeros((2, 8))
    par, hp = mingru_parallel(kp, h0)
    seq, hs = mingru_sequential(kp, h0)
    assert bool(jnp.isfinite(par).all())
    np.testing.assert_allclose(par, seq, rtol=1e-4, atol=1e-4)
    g = jax.grad(lambda k: mingru_parallel(k, h0)[0][-100:].sum())(kp)
    assert bool(jnp.isfinite(g).all())
    assert float(jnp.abs(g[-50:]).sum()) > 0
    chk, hc = mingru_chunked(kp, h0, chunk=64)
    np.testing.assert_allclose(chk, seq, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(hc, hs, rtol=1e-4, atol=1e-4)
    gc = jax.grad(lambda k: mingru_chunked(k, h0, chunk=64)[0][-100:].sum())(kp)
    gs = jax.grad(lambda k: mingru_sequential(k, h0)[0][-100:].sum())(kp)
    np.testing.assert_allclose(gc, gs, rtol=1e-4, atol=1e-5)


def test_reverse_within_lengths_and_mask(rng):
    x = jnp.arange(T * B).reshape(T, B)
    lengths = jnp.asarray(LENGTHS)
    r = np.asarray(reverse_within_lengths(x, lengths))
    xn = np.asarray(x)
    for b, n in enumerate(LENGTHS):
        np.testing.assert_array_equal(r[:n, b], xn[:n, b][::-1])
        np.testing.assert_array_equal(r[n:, b], xn[n:, b])
    np.testing.assert_array_equal(reverse_within_lengths(jnp.asarray(r), lengths), x)
    np.testing.assert_array_equal(lengths_to_mask(lengths, T),
                                  np.arange(T)[None] < LENGTHS[:, None])
    with pytest.raises(ValueError, match="integer dtype"):
        lengths_to_mask(jnp.asarray([1.0, 2.0]), T)


def test_mingru_mode_and_chunk_reach_the_layer_from_the_config(rng):
    import ml_collections
    from flax import nnx

    from grux.tasks.common import build_recurrent, recurrent_model_config, \
        validate_recurrent_model
    m = ml_collections.ConfigDict(recurrent_model_config(cell="mingru", hidden=H,
                                                         mingru_mode="chunked", mingru_chunk=4))
    validate_recurrent_model(m)
    stack = build_recurrent(m, F, nnx.Rngs(0))
    assert (stack.layers[0].mode, stack.layers[0].chunk) == ("chunked", 4)
    x = jnp.asarray(rng.normal(size=(B, 11, F)), jnp.float32)
    m.mingru_mode = "sequential"
    seq = build_recurrent(m, F, nnx.Rngs(0))
    np.testing.assert_allclose(stack(x, lengths=jnp.asarray([11, 5, 1]))[0],
                               seq(x, lengths=jnp.asarray([11, 5, 1]))[0], atol=1e-6)
    for field, value in (("mingru_mode", "blocked"), ("mingru_chunk", 0)):
        bad = ml_collections.ConfigDict(recurrent_model_config(cell="mingru", **{field: value}))
        with pytest.raises(ValueError, match=f"config.model.{field}"):
            validate_recurrent_model(bad)
