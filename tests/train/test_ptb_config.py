"""configs/ptb_word.py reproduces Zaremba et al.'s SGD updates on grux's per-token mean loss."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cli_runs import experiment_config
from grux.train.optim import make_optimizer


# Zaremba's lr 1 and clip 5; the small GRU's clip 1 was chosen on validation (issue 16)
@pytest.mark.parametrize("size,cell,clip", [("small", "lstm", 5.0), ("small", "gru", 1.0),
                                            ("medium", "gru", 5.0)])
@pytest.mark.parametrize("scale", [0.003, 0.3])  # gradient norm below / above the clip
def test_updates_equal_sgd_lr1_and_clip_on_the_loss_summed_over_time(size, cell, clip, scale):
    config = experiment_config("ptb_word", f"{size},{cell}")
    bptt = config.task.bptt
    rng = np.random.default_rng(0)
    w = {"a": jnp.asarray(rng.normal(size=(7, 3)) * scale, jnp.float32),
         "b": jnp.asarray(rng.normal(size=(3,)) * scale, jnp.float32)}
    x = jnp.asarray(rng.normal(size=(4, bptt, 7)), jnp.float32)     # (batch, time, features)

    def per_token(p):                                               # (batch, time) losses
        return jnp.sum((jnp.tanh(x @ p["a"] + p["b"])) ** 2, -1)

    mean_loss = lambda p: jnp.mean(per_token(p))                      # grux
    zaremba_loss = lambda p: jnp.mean(jnp.sum(per_token(p), 1))       # sum over time, mean batch

    tx, _ = make_optimizer(config.optimizer, config.num_train_steps)
    ours, _ = tx.update(jax.grad(mean_loss)(w), tx.init(w), w)
    ref_tx = optax.chain(optax.clip_by_global_norm(clip), optax.sgd(1.0))
    grad = jax.grad(zaremba_loss)(w)
    assert (optax.tree.norm(grad) > clip) == (scale > 0.1)        # both regimes exercised
    ref, _ = ref_tx.update(grad, ref_tx.init(w), w)
    for k in w:
        np.testing.assert_allclose(ours[k], ref[k], rtol=2e-5, atol=1e-7)
