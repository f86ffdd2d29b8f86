"""Flax NNX layers and stacks against the NumPy equations; masking; bidirectional; errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import reference as ref
from grux.nn import (GRU, LSTM, Bidirectional, GRULayer, LSTMLayer, MinGRU, MinGRULayer,
                     Recurrent, TanhRNNLayer)

B, T, F, H = 4, 6, 3, 5
LENGTHS = np.array([6, 3, 1, 5])

CASES = {
    "gru-cudnn": (lambda r: GRULayer(F, H, rngs=r), ref.gru_cudnn),
    "gru-cho": (lambda r: GRULayer(F, H, formulation="cho", rngs=r), ref.gru_cho),
    "gru-autodiff": (lambda r: GRULayer(F, H, backward="autodiff", rngs=r), ref.gru_cudnn),
    "lstm": (lambda r: LSTMLayer(F, H, rngs=r), ref.lstm),
    "tanh": (lambda r: TanhRNNLayer(F, H, rngs=r), ref.tanh_rnn),
    "mingru": (lambda r: MinGRULayer(F, H, mode="parallel", rngs=r), ref.mingru),
    "mingru-seq": (lambda r: MinGRULayer(F, H, mode="sequential", rngs=r), ref.mingru),
}


def _randomize_biases(layer, seed=1):
    """Default biases are zero; make them random so bias handling is actually tested."""
    rng = np.random.default_rng(seed)
    for name in ("b_ih", "b_hh"):
        p = getattr(layer, name, None)
        if p is not None:
            p[...] = jnp.asarray(rng.normal(0, 0.3, p[...].shape), p[...].dtype)
    return layer


def _np_reverse(x, lengths):
    out = x.copy()
    for b, n in enumerate(lengths):
        out[b, :n] = x[b, :n][::-1]
    return out


def _state0(layer, rng):
    if isinstance(layer, LSTMLayer):
        return (rng.normal(size=(B, H)).astype(np.float32),) * 2
    return rng.normal(size=(B, H)).astype(np.float32)


def _to64(s):
    return tuple(np.float64(a) for a in s) if isinstance(s, tuple) else np.float64(s)


def _close(got, want, atol=3e-6):
    if isinstance(want, tuple):
        for g, w in zip(got, want):
            np.testing.assert_allclose(np.asarray(g), w, atol=atol, rtol=1e-5)
    else:
        np.testing.assert_allclose(np.asarray(got), want, atol=atol, rtol=1e-5)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("reverse", [False, True])
def test_layer_matches_numpy(rng, case, reverse):
    make, ref_cell = CASES[case]
    layer = _randomize_biases(make(nnx.Rngs(0)))
    x = rng.normal(size=(B, T, F)).astype(np.float32)
    s0 = _state0(layer, rng)
    cell = ref_cell(ref.from_layer(layer))
    xin = _np_reverse(x, LENGTHS) if reverse else x
    want_o, want_s = ref.run(cell, np.float64(xin), LENGTHS, _to64(s0))
    if reverse:
        want_o = _np_reverse(want_o, LENGTHS)
    out, fin = layer(jnp.asarray(x), lengths=jnp.asarray(LENGTHS, jnp.int32),
                     initial_state=s0, reverse=reverse)
    _close(out, want_o)
    _close(fin, want_s)
    # time-major layout and an explicit mask give the same answer
    mask_tm = np.arange(T)[:, None] < LENGTHS[None]
    out_tm, fin_tm = layer(jnp.asarray(x).swapaxes(0, 1), mask=mask_tm, initial_state=s0,
                           reverse=reverse, time_major=True)
    _close(jnp.swapaxes(out_tm, 0, 1), want_o)
    _close(fin_tm, want_s)


@pytest.mark.parametrize("cell", ["gru", "lstm", "tanh", "mingru"])
def test_padded_batch_equals_each_sequence_alone(rng, cell):
    model = Recurrent(cell, F, H, num_layers=2, bidirectional=True, rngs=nnx.Rngs(0))
    x = rng.normal(size=(B, T, F)).astype(np.float32)
    x_padded = x.copy()
    for b, n in enumerate(LENGTHS):
        x_padded[b, n:] = 1e3  # garbage in the padding must not leak anywhere
    out, fin = model(x_padded, lengths=jnp.asarray(LENGTHS, jnp.int32))
    fin_h = fin[0] if isinstance(fin, tuple) else fin
    for b, n in enumerate(LENGTHS):
        o1, f1 = model(x[b:b + 1, :n])
        f1h = f1[0] if isinstance(f1, tuple) else f1
        np.testing.assert_allclose(out[b, :n], o1[0], atol=2e-6)
        np.testing.assert_array_equal(out[b, n:], 0.0)
        np.testing.assert_allclose(fin_h[:, b], f1h[:, 0], atol=2e-6)


def test_stack_matches_composed_numpy(rng):
    """2-layer bidirectional GRU stack = NumPy layer-by-layer composition."""
    model = GRU(F, H, num_layers=2, bidirectional=True, rngs=nnx.Rngs(3))
    for l in range(2):
        for d in model.directions(l):
            _randomize_biases(d, seed=l)
    x = rng.normal(size=(B, T, F))
    h0 = rng.normal(size=(4, B, H)).astype(np.float32)
    inp, finals = x, []
    for l in range(2):
        outs = []
        for d, layer in enumerate(model.directions(l)):
            cell = ref.gru_cudnn(ref.from_layer(layer))
            xin = _np_reverse(inp, LENGTHS) if d else inp
            o, f = ref.run(cell, xin, LENGTHS, np.float64(h0[2 * l + d]))
            outs.append(_np_reverse(o, LENGTHS) if d else o)
            finals.append(f)
        inp = np.concatenate(outs, axis=-1)
    out, fin = model(jnp.asarray(x, jnp.float32), lengths=jnp.asarray(LENGTHS, jnp.int32),
                     initial_state=h0)
    np.testing.assert_allclose(out, inp, atol=5e-6)
    np.testing.assert_allclose(fin, np.stack(finals), atol=5e-6)
    assert out.shape == (B, T, 2 * H) and fin.shape == (4, B, H)


def test_lstm_stack_state_layout_and_forget_bias():
    model = LSTM(F, H, num_layers=3, forget_bias=1.0, rngs=nnx.Rngs(0))
    b = np.asarray(model.layers[0].b_ih[...])
    np.testing.assert_array_equal(b[H:2 * H], 1.0)
    np.testing.assert_array_equal(np.delete(b, np.s_[H:2 * H]), 0.0)
    h0 = (jnp.ones((3, B, H)), jnp.zeros((3, B, H)))
    out, (h, c) = model(jnp.ones((B, T, F)), initial_state=h0)
    assert h.shape == c.shape == (3, B, H)
    np.testing.assert_allclose(h[-1], out[:, -1], atol=1e-7)


def test_dropout_between_layers_train_and_eval():
    model = GRU(F, H, num_layers=2, dropout=0.5, rngs=nnx.Rngs(0))
    x = jnp.ones((B, T, F))
    a, _ = model(x)
    b, _ = model(x)
    assert np.abs(np.asarray(a) - np.asarray(b)).max() > 1e-4   # fresh masks each call
    ev = nnx.view(model, deterministic=True)
    c, _ = ev(x)
    d, _ = ev(x)
    np.testing.assert_array_equal(c, d)
    nodrop = GRU(F, H, num_layers=2, rngs=nnx.Rngs(0))
    e, _ = nodrop(x)
    np.testing.assert_allclose(c, e, atol=1e-6)   # same init, eval mode = no dropout


def test_gradients_flow_through_stack_and_match_autodiff(rng):
    x = jnp.asarray(rng.normal(size=(B, T, F)).astype(np.float32))
    lengths = jnp.asarray(LENGTHS, jnp.int32)
    grads = {}
    for backward in ("custom", "autodiff"):
        model = GRU(F, H, num_layers=2, bidirectional=True, backward=backward, rngs=nnx.Rngs(0))
        graphdef, params = nnx.split(model, nnx.Param)

        def loss(params):
            m = nnx.merge(graphdef, params)
            out, fin = m(x, lengths=lengths)
            return jnp.sum(out ** 2) + jnp.sum(jnp.sin(fin))

        grads[backward] = jax.jit(jax.grad(loss))(params)
    leaves_c = jax.tree.leaves(grads["custom"])
    leaves_a = jax.tree.leaves(grads["autodiff"])
    assert len(leaves_c) == 16
    for a, c in zip(leaves_c, leaves_a):
        assert float(jnp.abs(a).max()) > 0
        np.testing.assert_allclose(a, c, atol=2e-5, rtol=1e-4)


def test_bf16_compute_dtype_with_f32_params(rng):
    x = rng.normal(size=(B, T, F)).astype(np.float32)
    m32 = GRU(F, H, num_layers=2, rngs=nnx.Rngs(0))
    m16 = GRU(F, H, num_layers=2, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    assert m16.layers[0].w_hh[...].dtype == jnp.float32
    o32, _ = m32(x)
    o16, f16 = m16(x)
    assert o16.dtype == jnp.bfloat16 and f16.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(o16, np.float32), o32, atol=3e-2)


def test_remat_and_unroll_do_not_change_results(rng):
    x = jnp.asarray(rng.normal(size=(B, T, F)).astype(np.float32))
    base = GRU(F, H, rngs=nnx.Rngs(0))
    other = GRU(F, H, remat=True, unroll=3, rngs=nnx.Rngs(0))
    g = lambda m: jax.grad(lambda xx: jnp.sum(m(xx)[0] ** 2))(x)
    np.testing.assert_allclose(base(x)[0], other(x)[0], atol=1e-6)
    np.testing.assert_allclose(g(base), g(other), atol=1e-5)


def test_bad_inputs_raise_clear_errors():
    layer = GRULayer(F, H, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="rank-3"):
        layer(jnp.ones((T, F)))
    with pytest.raises(ValueError, match="in_features=3"):
        layer(jnp.ones((B, T, F + 1)))
    with pytest.raises(ValueError, match="integer dtype"):
        layer(jnp.ones((B, T, F)), lengths=jnp.ones(B))
    with pytest.raises(ValueError, match="lengths has 2 entries"):
        layer(jnp.ones((B, T, F)), lengths=jnp.ones(2, jnp.int32))
    with pytest.raises(ValueError, match="mask must have shape"):
        layer(jnp.ones((B, T, F)), mask=jnp.ones((T, B)))
    with pytest.raises(ValueError, match="either lengths or mask"):
        layer(jnp.ones((B, T, F)), lengths=jnp.ones(B, jnp.int32), mask=jnp.ones((B, T)))
    with pytest.raises(ValueError, match=r"initial_state must have shape \(batch, hidden\)"):
        layer(jnp.ones((B, T, F)), initial_state=jnp.zeros((B, H + 1)))
    with pytest.raises(ValueError, match="formulation"):
        GRULayer(F, H, formulation="keras", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="cell must be one of"):
        Recurrent("transformer", F, H, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="dropout"):
        GRU(F, H, dropout=1.5, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="num_layers"):
        GRU(F, H, num_layers=0, rngs=nnx.Rngs(0))
    stack = GRU(F, H, num_layers=2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="num_layers\\*num_directions=2"):
        stack(jnp.ones((B, T, F)), initial_state=jnp.zeros((1, B, H)))
    with pytest.raises(ValueError, match="pair"):
        LSTMLayer(F, H, rngs=nnx.Rngs(0))(jnp.ones((B, T, F)), initial_state=jnp.zeros((B, H)))
    with pytest.raises(ValueError, match="in_features"):
        Bidirectional(GRULayer(F, H, rngs=nnx.Rngs(0)), GRULayer(F + 1, H, rngs=nnx.Rngs(0)))


def test_mingru_stack_trains_under_jit_with_split_merge(rng):
    """The functional split/merge + jit pattern works and a few SGD steps reduce the loss."""
    model = MinGRU(F, H, num_layers=2, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model, nnx.Param)
    x = jnp.asarray(rng.normal(size=(B, T, F)).astype(np.float32))
    y = jnp.asarray(rng.normal(size=(B, T, H)).astype(np.float32)) * 0.3

    @jax.jit
    def step(params):
        def loss(p):
            return jnp.mean((nnx.merge(graphdef, p)(x)[0] - y) ** 2)
        l, g = jax.value_and_grad(loss)(params)
        return jax.tree.map(lambda p, g: p - 0.5 * g, params, g), l

    losses = []
    for _ in range(30):
        params, l = step(params)
        losses.append(float(l))
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_single_steps_reproduce_the_scan(rng, case):
    """``layer.step`` (the autoregressive API) applied T times equals the scan, against the
    same NumPy reference, state for state."""
    make, ref_cell = CASES[case]
    layer = _randomize_biases(make(nnx.Rngs(0)))
    x = rng.normal(size=(B, T, F)).astype(np.float32)
    s0 = _state0(layer, rng)
    want_out, want_final = ref.run(ref_cell(ref.from_layer(layer)), np.float64(x),
                                   np.full(B, T), _to64(s0))
    state, outs = s0, []
    for t in range(T):
        y, state = jax.jit(lambda m, x, s: m.step(x, s))(layer, x[:, t], state)
        outs.append(y)
    _close(jnp.stack(outs, 1), want_out)
    _close(state, want_final)


def test_project_splits_the_input_projection_by_feature_rows(rng):
    layer = _randomize_biases(GRULayer(F, H, rngs=nnx.Rngs(0)))
    x = rng.normal(size=(B, F)).astype(np.float32)
    whole = layer.project(x)
    parts = (layer.project(x[:, :1], features=slice(0, 1))
             + layer.project(x[:, 1:], features=slice(1, None), bias=False))
    np.testing.assert_allclose(parts, whole, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(whole, x @ layer.w_ih[...] + layer.b_ih[...], rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("cell", ["gru", "lstm", "tanh", "mingru"])
def test_stack_step_equals_running_one_step_sequences(rng, cell):
    stack = Recurrent(cell, F, H, num_layers=2, rngs=nnx.Rngs(1))
    x = rng.normal(size=(B, 3, F)).astype(np.float32)
    out, final = stack(x)
    state = None
    for t in range(3):
        y, state = stack.step(x[:, t], state)
        np.testing.assert_allclose(y, out[:, t], rtol=1e-5, atol=2e-6)
    for got, want in zip(jax.tree.leaves(state), jax.tree.leaves(final)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6)
    with pytest.raises(ValueError, match="bidirectional stack .* cannot step"):
        Recurrent(cell, F, H, bidirectional=True, rngs=nnx.Rngs(0)).step(x[:, 0])


@pytest.mark.parametrize("case", sorted(CASES))
def test_step_shared_state_equals_one_step_per_input(rng, case):
    """M inputs from one state each: the same outputs as M separate ``step_projected`` calls
    from copies of the state (the broadcast form only skips repeating ``h W_hh``)."""
    make, _ = CASES[case]
    layer = _randomize_biases(make(nnx.Rngs(0)))
    m = 3
    x = rng.normal(size=(B, m, F)).astype(np.float32)
    s0 = _state0(layer, rng)
    got = layer.step_shared_state(layer.project(x), s0)
    assert got.shape == (B, m, H)
    for j in range(m):
        want, _ = layer.step_projected(layer.project(x[:, j]), s0)
        np.testing.assert_allclose(got[:, j], want, rtol=1e-5, atol=2e-6)
    with pytest.raises(ValueError, match=r"step_shared_state expects xp of shape"):
        layer.step_shared_state(layer.project(x[:, 0]), s0)


@pytest.mark.parametrize("cell, ref_cell", [("gru", ref.gru_cudnn), ("lstm", ref.lstm),
                                            ("tanh", ref.tanh_rnn)])
def test_weight_dropout_is_one_dropconnect_mask_on_w_hh_per_call(rng, cell, ref_cell):
    """DropConnect on W_hh: the entries whose gradient is exactly zero are the dropped ones
    (about the rate of them); the outputs are the NumPy recurrence run with W_hh zeroed
    there and the rest scaled by 1/(1 − p), the same mask for every sequence and step; a
    deterministic view and a call without it on a fresh key differ."""
    p, hidden = 0.5, 16
    model = Recurrent(cell, F, hidden, weight_dropout=p, rngs=nnx.Rngs(0))
    layer = _randomize_biases(model.layers[0])
    x = jnp.asarray(rng.normal(size=(B, T, F)).astype(np.float32))
    lengths = jnp.asarray(LENGTHS, jnp.int32)
    key = jax.random.key(7)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss(params):
        out, _ = nnx.merge(graphdef, params, rest)(x, lengths=lengths, rngs=key)
        return jnp.sum(jnp.sin(out) * 3.0 + out ** 2)

    g_hh = np.asarray(jax.grad(loss)(params)["layers"][0]["w_hh"][...])
    dropped = g_hh == 0
    assert 0.35 < dropped.mean() < 0.65
    weights = ref.from_layer(layer)
    w = np.asarray(layer.w_hh[...], np.float64)
    weights["weight_hh"] = np.where(dropped, 0.0, w / (1 - p)).T
    zeros = ((np.zeros((B, hidden)),) * 2) if cell == "lstm" else np.zeros((B, hidden))
    want, _ = ref.run(ref_cell(weights), np.float64(x), LENGTHS, zeros)
    got, _ = model(x, lengths=lengths, rngs=key)
    np.testing.assert_allclose(np.asarray(got), want, atol=5e-6)
    plain, _ = nnx.view(model, deterministic=True)(x, lengths=lengths)
    weights["weight_hh"] = w.T
    want_plain, _ = ref.run(ref_cell(weights), np.float64(x), LENGTHS, zeros)
    np.testing.assert_allclose(np.asarray(plain), want_plain, atol=5e-6)
    other, _ = model(x, lengths=lengths, rngs=jax.random.key(8))
    assert np.abs(np.asarray(other) - np.asarray(got)).max() > 1e-3


def test_weight_dropout_needs_recurrent_weights_and_one_direction():
    with pytest.raises(ValueError, match="weight_dropout"):
        Recurrent("mingru", F, H, weight_dropout=0.3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="weight_dropout"):
        GRU(F, H, bidirectional=True, weight_dropout=0.3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="weight_dropout"):
        GRU(F, H, weight_dropout=1.0, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="recurrent_weights"):
        MinGRULayer(F, H, rngs=nnx.Rngs(0))(jnp.ones((B, T, F)), recurrent_weights=lambda w: w)
