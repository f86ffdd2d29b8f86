"""grux.ops.gru against the NumPy equations, and its custom VJP against finite differences."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import reference as ref
from grux.ops import gru_cell, gru_scan, gru_step

T, B, F, H = 7, 4, 3, 5
LENGTHS = np.array([7, 4, 1, 0])


def make_params(rng, formulation, dtype=np.float64):
    p = {"weight_ih": rng.normal(0, 0.5, (3 * H, F)), "weight_hh": rng.normal(0, 0.5, (3 * H, H)),
         "bias_ih": rng.normal(0, 0.2, 3 * H)}
    if formulation == "cudnn":
        p["bias_hh"] = rng.normal(0, 0.2, 3 * H)
    return {k: v.astype(dtype) for k, v in p.items()}


def run_grux(p, x, h0, lengths, formulation, backward, **kw):
    """x: (B, T, F) batch-major NumPy → outputs (B, T, H), final (B, H)."""
    xp = jnp.einsum("btf,gf->tbg", x, p["weight_ih"]) + p["bias_ih"]
    mask = None if lengths is None else (np.arange(x.shape[1])[:, None] < lengths[None])
    out, fin = gru_scan(xp, jnp.asarray(h0), jnp.asarray(p["weight_hh"].T),
                        None if "bias_hh" not in p else jnp.asarray(p["bias_hh"]),
                        None if mask is None else jnp.asarray(mask),
                        formulation=formulation, backward=backward, **kw)
    return np.asarray(jnp.swapaxes(out, 0, 1)), np.asarray(fin)


@pytest.mark.parametrize("formulation", ["cho", "cudnn"])
@pytest.mark.parametrize("backward", ["custom", "autodiff"])
@pytest.mark.parametrize("masked", [False, True])
def test_forward_matches_numpy(rng, formulation, backward, masked):
    p = make_params(rng, formulation, np.float32)
    x = rng.normal(size=(B, T, F)).astype(np.float32)
    h0 = rng.normal(0, 0.5, (B, H)).astype(np.float32)
    lengths = LENGTHS if masked else np.full(B, T)
    cell = ref.gru_cho(p) if formulation == "cho" else ref.gru_cudnn(p)
    want_out, want_fin = ref.run(cell, x.astype(np.float64), lengths, h0.astype(np.float64))
    got_out, got_fin = run_grux(p, x, h0, LENGTHS if masked else None, formulation, backward)
    np.testing.assert_allclose(got_out, want_out, atol=2e-6, rtol=1e-5)
    np.testing.assert_allclose(got_fin, want_fin, atol=2e-6, rtol=1e-5)


def test_formulations_follow_their_own_update_gate_convention():
    """One hand-computed step: all weights zero, update-gate bias +20 (z ≈ 1). Cho 2014
    writes h' = (1−z)⊙h + z⊙h~, so the state is replaced by h~ = tanh(0) = 0; cuDNN/PyTorch
    write h' = (1−z)⊙n + z⊙h, so the state is kept. A formulation aliasing the other, or a
    swapped convention, fails one of the two."""
    from grux.ops import gru_cell
    h = np.array([[0.5, -0.25]], np.float32)
    xp = np.zeros((1, 6), np.float32)
    xp[0, 2:4] = 20.0                                   # the z block (gate order r, z, n)
    w_hh = np.zeros((2, 6), np.float32)
    np.testing.assert_allclose(gru_cell(h, xp, w_hh, None, "cho"), [[0.0, 0.0]], atol=1e-8)
    np.testing.assert_allclose(gru_cell(h, xp, w_hh, np.zeros(6, np.float32), "cudnn"), h,
                               atol=1e-8)
    # both taking the candidate (Cho: z ≈ 1, cuDNN: z ≈ 0) with U_n = I and r ≈ 1, the
    # forms differ where the reset and b_hn enter: tanh(U_n(r⊙h)) vs tanh(r⊙(U_n h + b_hn))
    w_hh[:, 4:6] = np.eye(2)
    b_hh = np.zeros(6, np.float32)
    b_hh[4:6] = 0.3                                      # b_hn: only cuDNN has it
    cho_in, cudnn_in = xp.copy(), xp.copy()
    cho_in[0, 0:2] = cudnn_in[0, 0:2] = 20.0             # r ≈ 1
    cudnn_in[0, 2:4] = -20.0
    np.testing.assert_allclose(gru_cell(h, cho_in, w_hh, None, "cho"), np.tanh(h), atol=1e-6)
    np.testing.assert_allclose(gru_cell(h, cudnn_in, w_hh, b_hh, "cudnn"), np.tanh(h + 0.3),
                               atol=1e-6)
    cho_in[0, 0:2] = cudnn_in[0, 0:2] = -20.0            # r ≈ 0: the reset removes U_n h
    np.testing.assert_allclose(gru_cell(h, cho_in, w_hh, None, "cho"), [[0.0, 0.0]], atol=1e-6)
    np.testing.assert_allclose(gru_cell(h, cudnn_in, w_hh, b_hh, "cudnn"), [[0.0, 0.0]],
                               atol=1e-6)


@pytest.mark.parametrize("formulation", ["cho", "cudnn"])
def test_single_step_functions(rng, formulation):
    p = make_params(rng, formulation, np.float32)
    x = rng.normal(size=(B, F)).astype(np.float32)
    h = rng.normal(size=(B, H)).astype(np.float32)
    cell = ref.gru_cho(p) if formulation == "cho" else ref.gru_cudnn(p)
    want = np.stack([cell(h[i].astype(np.float64), x[i].astype(np.float64)) for i in range(B)])
    b_hh = jnp.asarray(p["bias_hh"]) if "bias_hh" in p else None
    got = gru_step(h, x, p["weight_ih"].T, p["weight_hh"].T, p["bias_ih"], b_hh, formulation)
    np.testing.assert_allclose(got, want, atol=2e-6)
    got2 = gru_cell(h, x @ p["weight_ih"].T + p["bias_ih"], p["weight_hh"].T, b_hh, formulation)
    np.testing.assert_allclose(got2, want, atol=2e-6)


@pytest.mark.parametrize("formulation", ["cho", "cudnn"])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("remat", [False, True])
def test_custom_vjp_against_finite_differences(rng, formulation, masked, remat):
    with jax.enable_x64(True):
        p = make_params(rng, formulation)
        x = rng.normal(size=(T, B, F))
        h0 = rng.normal(0, 0.5, (B, H))
        mask = jnp.asarray(np.arange(T)[:, None] < LENGTHS[None]) if masked else None
        proj = jnp.asarray(rng.normal(size=(H,)))

        def loss(x, w_ih, b_ih, h0, w_hh, *b_hh):
            xp = jnp.einsum("tbf,fg->tbg", x, w_ih) + b_ih
            out, fin = gru_scan(xp, h0, w_hh, b_hh[0] if b_hh else None, mask,
                                formulation=formulation, backward="custom", remat=remat)
            return jnp.sum(jnp.sin(out @ proj)) + jnp.sum(fin ** 2)

        args = [x, p["weight_ih"].T, p["bias_ih"], h0, p["weight_hh"].T]
        if formulation == "cudnn":
            args.append(p["bias_hh"])
        check_grads(loss, tuple(jnp.asarray(a) for a in args), order=1, modes=["rev"],
                    atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("formulation", ["cho", "cudnn"])
def test_custom_and_autodiff_gradients_agree_f32(rng, formulation):
    p = make_params(rng, formulation, np.float32)
    xp = jnp.asarray(rng.normal(size=(T, B, 3 * H)).astype(np.float32))
    h0 = jnp.asarray(rng.normal(size=(B, H)).astype(np.float32))
    w = jnp.asarray(p["weight_hh"].T)
    b = jnp.asarray(p["bias_hh"]) if "bias_hh" in p else None
    mask = jnp.asarray(np.arange(T)[:, None] < LENGTHS[None])

    def loss(backward, xp, h0, w, b):
        out, fin = gru_scan(xp, h0, w, b, mask, formulation=formulation, backward=backward,
                            unroll=2)
        return jnp.sum(out * jnp.cos(out)) + jnp.sum(fin)

    g1 = jax.grad(loss, argnums=(1, 2, 3, 4))("custom", xp, h0, w, b)
    g2 = jax.grad(loss, argnums=(1, 2, 3, 4))("autodiff", xp, h0, w, b)
    for a, c in zip(g1, g2):
        if a is not None:
            np.testing.assert_allclose(a, c, atol=1e-5, rtol=1e-5)


def test_bf16_compute_close_to_f32(rng):
    p = make_params(rng, "cudnn", np.float32)
    xp = jnp.asarray(rng.normal(size=(T, B, 3 * H)).astype(np.float32))
    h0 = jnp.zeros((B, H))
    w, b = jnp.asarray(p["weight_hh"].T), jnp.asarray(p["bias_hh"])
    o32, _ = gru_scan(xp, h0, w, b)
    bf = jnp.bfloat16
    o16, _ = gru_scan(xp.astype(bf), h0.astype(bf), w.astype(bf), b.astype(bf))
    assert o16.dtype == bf
    np.testing.assert_allclose(np.asarray(o16, np.float32), o32, atol=3e-2)
    g = jax.grad(lambda w: gru_scan(xp.astype(bf), h0.astype(bf), w, b.astype(bf))[0]
                 .astype(jnp.float32).sum())(w.astype(bf))
    assert g.dtype == bf and bool(jnp.isfinite(g.astype(jnp.float32)).all())


def test_bad_inputs_raise(rng):
    xp = jnp.zeros((T, B, 3 * H))
    h0 = jnp.zeros((B, H))
    w = jnp.zeros((H, 3 * H))
    b = jnp.zeros(3 * H)
    with pytest.raises(ValueError, match="formulation"):
        gru_scan(xp, h0, w, b, formulation="keras")
    with pytest.raises(ValueError, match="backward"):
        gru_scan(xp, h0, w, b, backward="magic")
    with pytest.raises(ValueError, match="xp must have shape"):
        gru_scan(xp[..., :-1], h0, w, b)
    with pytest.raises(ValueError, match="w_hh"):
        gru_scan(xp, h0, jnp.zeros((H, H)), b)
    with pytest.raises(ValueError, match="h0"):
        gru_scan(xp, jnp.zeros((B + 1, H)), w, b)
    with pytest.raises(ValueError, match="recurrent bias"):
        gru_scan(xp, h0, w, b, formulation="cho")
    with pytest.raises(ValueError, match="mask"):
        gru_scan(xp, h0, w, b, jnp.ones((T + 1, B)))
