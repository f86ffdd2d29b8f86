"""Both directions of a bidirectional layer in one scan (grux.ops.bidirectional_scan with
stacked recurrent weights) against the two-scan form, and its custom VJP against finite
differences."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from grux.ops import (bidirectional_scan, gru_scan, lstm_scan, reverse_within_lengths,
                      tanh_rnn_scan)

T, B, H = 7, 4, 5
LENGTHS = np.array([7, 3, 0, 1])        # full length, partial, empty, one step


def _mask(lengths):
    return None if lengths is None else jnp.asarray(np.arange(T)[:, None] < lengths[None])


def two_scans(scan, xp_f, xp_b, s_f, s_b, w_f, w_b, b_f, b_b, lengths):
    """The reference form: two scans, the reverse one on each sequence reversed within its
    length, its outputs reversed back."""
    mask = _mask(lengths)
    lens = None if lengths is None else jnp.asarray(lengths)
    out_f, fin_f = scan(xp_f, s_f, w_f, b_f, mask)
    out_b, fin_b = scan(reverse_within_lengths(xp_b, lens), s_b, w_b, b_b, mask)
    return out_f, reverse_within_lengths(out_b, lens), fin_f, fin_b


def one_scan(scan, xp_f, xp_b, s_f, s_b, w_f, w_b, b_f, b_b, lengths):
    w = jnp.stack([w_f, w_b])
    b = None if b_f is None else jnp.stack([b_f, b_b])
    return bidirectional_scan(lambda xp, s, m: scan(xp, s, w, b, m), xp_f, xp_b, s_f, s_b,
                              _mask(lengths))


def _loss(form, scan, lengths, weights):
    """A loss on every output and final state with unequal, sign-changing cotangents; the
    outputs and states as auxiliary results."""
    def loss(*args):
        results = form(scan, *args, lengths)
        parts = jax.tree.leaves(results)
        return sum(jnp.sum(jnp.sin(p * w)) for p, w in zip(parts, weights)), results
    return loss


def _random(rng, blocks, bias, state_parts=1):
    g = blocks * H
    n = lambda *s: jnp.asarray(rng.normal(0, 0.6, s).astype(np.float32))
    state = lambda: n(B, H) if state_parts == 1 else tuple(n(B, H) for _ in range(state_parts))
    return (n(T, B, g), n(T, B, g), state(), state(), n(H, g), n(H, g),
            n(g) if bias else None, n(g) if bias else None)


def assert_same(scan, args, lengths, atol=2e-6):
    """Outputs, final states and the gradients w.r.t. every argument of the fused form equal
    the two-scan form's (float32; differences are a few ulps of reassociated sums)."""
    weights = [1.0, -1.3, 0.7, 1.9, -0.4, 1.1]
    argnums = tuple(i for i, a in enumerate(args) if a is not None)
    g_want, want = jax.jit(jax.grad(_loss(two_scans, scan, lengths, weights), argnums,
                                    has_aux=True))(*args)
    g_got, got = jax.jit(jax.grad(_loss(one_scan, scan, lengths, weights), argnums,
                                  has_aux=True))(*args)
    assert len(jax.tree.leaves(got)) == len(jax.tree.leaves(want))
    for w, g in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=atol)
    for w, g in zip(jax.tree.leaves(g_want), jax.tree.leaves(g_got)):
        assert float(jnp.max(jnp.abs(w))) > 1e-3        # a gradient that actually flows
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=atol)


@pytest.mark.parametrize("formulation, backward, unroll, remat, masked", [
    ("cho", "custom", 1, False, True), ("cudnn", "custom", 1, False, True),
    ("cho", "custom", 2, True, True), ("cudnn", "custom", 3, True, True),
    ("cho", "autodiff", 2, False, True), ("cudnn", "autodiff", 1, False, True),
    ("cudnn", "custom", 1, False, False), ("cho", "autodiff", 3, False, False)])
def test_fused_gru_equals_two_scans(rng, formulation, backward, unroll, remat, masked):
    args = _random(rng, 3, bias=formulation == "cudnn")

    def scan(xp, h0, w, b, mask):
        return gru_scan(xp, h0, w, b, mask, formulation=formulation, backward=backward,
                        unroll=unroll, remat=remat)

    assert_same(scan, args, LENGTHS if masked else None)


@pytest.mark.parametrize("cell", ["lstm", "tanh"])
def test_fused_lstm_and_tanh_rnn_equal_two_scans(rng, cell):
    if cell == "lstm":
        args = _random(rng, 4, bias=True, state_parts=2)
        scan = lambda xp, s, w, b, m: lstm_scan(xp, s, w, b, m)
    else:
        args = _random(rng, 1, bias=True)
        scan = lambda xp, s, w, b, m: tanh_rnn_scan(xp, s, w, b, m)
    assert_same(scan, args, LENGTHS)


def test_the_reverse_direction_reads_each_sequence_from_its_own_last_step(rng):
    """Independent of the two-scan helper: with the forward direction's weights for both,
    direction ← of sequence b at its first step equals direction → run over the sequence
    reversed by hand within its length."""
    xp_f, _, h0, _, w, _, b, _ = _random(rng, 3, bias=True)
    mask = _mask(LENGTHS)
    ws, bs = jnp.stack([w, w]), jnp.stack([b, b])
    _, out_b, _, fin_b = bidirectional_scan(
        lambda xp, s, m: gru_scan(xp, s, ws, bs, m), xp_f, xp_f, h0, h0, mask)
    for i, n in enumerate(LENGTHS):
        x_rev = np.asarray(xp_f)[:, i:i + 1].copy()
        x_rev[:n] = x_rev[:n][::-1]
        o, f = gru_scan(jnp.asarray(x_rev), h0[i:i + 1], w, b, mask[:, i:i + 1])
        want = np.asarray(o)[:, 0].copy()
        want[:n] = want[:n][::-1]
        np.testing.assert_allclose(out_b[:, i], want, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(fin_b[i], f[0], rtol=1e-6, atol=1e-6)
        assert not np.asarray(out_b[n:, i]).any()                  # padding stays zero
        if n == 0:
            np.testing.assert_array_equal(fin_b[i], h0[i])          # nothing read


@pytest.mark.parametrize("formulation", ["cho", "cudnn"])
def test_fused_custom_vjp_against_finite_differences(rng, formulation):
    t, b, h = 4, 3, 3
    lengths = np.array([4, 2, 0])
    with jax.enable_x64(True):
        n = lambda *s: jnp.asarray(rng.normal(0, 0.5, s))
        mask = jnp.asarray(np.arange(t)[:, None] < lengths[None])
        proj = n(2, h)

        def loss(xp_f, xp_b, h0, w_hh, *b_hh):
            out_f, out_b, fin_f, fin_b = bidirectional_scan(
                lambda xp, s, m: gru_scan(xp, s, w_hh, b_hh[0] if b_hh else None, m,
                                          formulation=formulation, backward="custom"),
                xp_f, xp_b, h0[0], h0[1], mask)
            return (jnp.sum(jnp.sin(out_f @ proj[0])) + jnp.sum(jnp.cos(out_b @ proj[1]))
                    + jnp.sum(fin_f ** 2) - jnp.sum(fin_b ** 3))

        args = [n(t, b, 3 * h), n(t, b, 3 * h), n(2, b, h), n(2, h, 3 * h)]
        if formulation == "cudnn":
            args.append(n(2, 3 * h))
        check_grads(loss, tuple(args), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


def test_stacked_shapes_are_checked():
    xp = jnp.zeros((T, 2, B, 3 * H))
    h0 = jnp.zeros((2, B, H))
    w = jnp.zeros((2, H, 3 * H))
    with pytest.raises(ValueError, match=r"xp must have shape \(T, D=2, B, 3H=15\)"):
        gru_scan(xp[:, :1], h0, w, None, formulation="cho")
    with pytest.raises(ValueError, match=r"h0 must have shape \(D=2, B=4, H=5\)"):
        gru_scan(xp, h0[:, :-1], w, None, formulation="cho")
    with pytest.raises(ValueError, match=r"b_hh must have shape \(D=2, 15\)"):
        gru_scan(xp, h0, w, jnp.zeros(3 * H))
    with pytest.raises(ValueError, match=r"mask must have shape \(T, B\) or \(T, D, B\)"):
        gru_scan(xp, h0, w, None, jnp.ones((T, B + 1)), formulation="cho")
    with pytest.raises(ValueError, match=r"c0 must have shape"):
        lstm_scan(jnp.zeros((T, 2, B, 4 * H)), (h0, h0[:1]), jnp.zeros((2, H, 4 * H)), None)
