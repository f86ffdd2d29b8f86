"""Language modelling: token streams, Zaremba batching, perplexity/bpc definitions, stateful
truncated BPTT equal to one pass over the whole stream, and sampling."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from grux.tasks.lm import (LanguageModelTask, batchify, build_vocab, detokenize,
                           prompt_tokens, sample_tokens, tokenize, window_batch)
from grux.train.config import base_config


def test_tokenize_and_detokenize():
    assert tokenize("ptb", [" the cat ", " sat"]) == ["the", "cat", "<eos>", "sat", "<eos>"]
    assert tokenize("ptb_char", [" a _ b", " c"]) == ["a", "_", "b", "<eos>", "c", "<eos>"]
    assert tokenize("tiny_shakespeare", ["ab\nc"]) == ["a", "b", "\n", "c"]
    assert detokenize("ptb", ["the", "cat", "<eos>", "sat"]) == "the cat\nsat"
    assert detokenize("ptb_char", ["a", "_", "b", "<eos>"]) == "a b\n"
    assert prompt_tokens("ptb_char", "to be") == ["<eos>", "t", "o", "_", "b", "e"]
    assert build_vocab(["b", "a", "b", "c", "a", "b"]) == ["b", "a", "c"]


def test_batchify_and_windows_cover_the_stream_in_order():
    ids = np.arange(103)
    data = batchify(ids, 4)                       # 4 rows of 25, 3 tokens dropped
    assert data.shape == (4, 25) and data[1, 0] == 25
    bptt, xs, ys, masks = 7, [], [], []
    for w in range(-(-(25 - 1) // bptt)):         # 4 windows, the last one short
        b = window_batch(data, w, bptt, epoch_start=(w == 0))
        xs.append(b["inputs"]), ys.append(b["targets"]), masks.append(b["mask"])
        assert b["reset"].tolist() == [float(w == 0)] * 4
    x, y, m = (np.concatenate(a, axis=1) for a in (xs, ys, masks))
    assert m.sum() == 4 * 24
    np.testing.assert_array_equal(x[:, :24], data[:, :24])
    np.testing.assert_array_equal(y[:, :24], data[:, 1:])
    assert (m[:, 24:] == 0).all()


def _task(tokens, **model):
    c = base_config("lm")
    c.task.bptt = 5
    c.model.hidden, c.model.num_layers = 16, 2
    for k, v in model.items():
        c.model[k] = v
    t = LanguageModelTask(c)
    t._tokens = {s: tokens for s in ("train", "validation", "test")}
    return t


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_stateful_windows_equal_one_pass_over_the_stream(cell):
    rng = np.random.default_rng(0)
    tokens = [str(i) for i in rng.integers(0, 20, 203)]
    task = _task(tokens, cell=cell)
    model = task.build_model(nnx.Rngs(0))
    stream = task.eval_streams(4, 0, 1)["test"]
    carry = task.initial_carry(model, 4)
    total = count = 0.0
    for batch in stream:
        metrics, carry = task.loss(model, batch, rng=None, carry=carry, train=False)
        s, w = metrics["loss"]
        total, count = total + float(s), count + float(w)
    data = batchify(task.encode(tokens), 4)
    logits, _ = model(jnp.asarray(data[:, :-1]))
    logp = jax.nn.log_softmax(logits, -1)
    nll = -np.take_along_axis(np.asarray(logp), data[:, 1:, None], -1).sum()
    assert count == data.shape[0] * (data.shape[1] - 1)
    assert total == pytest.approx(float(nll), rel=1e-4)


def test_epoch_start_resets_the_carried_state():
    tokens = [str(i % 7) for i in range(120)]
    task = _task(tokens)
    model = task.build_model(nnx.Rngs(0))
    b = window_batch(batchify(task.encode(tokens), 2), 0, 5, epoch_start=True)
    zero = task.initial_carry(model, 2)
    junk = jax.tree.map(lambda s: s + 3.0, zero)
    m0, _ = task.loss(model, b, rng=None, carry=zero, train=False)
    m1, _ = task.loss(model, b, rng=None, carry=junk, train=False)
    assert float(m0["loss"][0]) == float(m1["loss"][0])
    b["reset"][:] = 0.0
    m2, _ = task.loss(model, b, rng=None, carry=junk, train=False)
    assert float(m2["loss"][0]) != float(m0["loss"][0])


def test_perplexity_and_bpc_definitions():
    word = _task(["a", "b"])
    assert word.summarize({"loss": math.log(50.0)})["perplexity"] == pytest.approx(50.0)
    char = _task(["a", "b"])
    char.level = "char"
    assert char.summarize({"loss": 2 * math.log(2.0)})["bpc"] == pytest.approx(2.0)


def test_tied_weights_share_the_embedding():
    task = _task(["a", "b", "c"] * 10, tie_weights=True)
    model = task.build_model(nnx.Rngs(0))
    assert not hasattr(model, "head")
    with pytest.raises(ValueError, match="tie_weights needs embed == hidden"):
        c = base_config("lm")
        c.model.tie_weights, c.model.embed = True, 7
        LanguageModelTask.validate(c)


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_sampling_gives_valid_tokens_and_greedy_equals_top1(dropout):
    """Also for a model trained with dropout: sampling runs it without dropout."""
    tokens = [str(i % 11) for i in range(300)]
    task = _task(tokens, dropout=dropout)
    model = task.build_model(nnx.Rngs(0))
    prompt = task.encode(["1", "2", "3"])
    s = sample_tokens(model, prompt, 40, jax.random.PRNGKey(0), temperature=1.0)
    assert s.shape == (40,) and s.min() >= 0 and s.max() < len(task.vocab)
    greedy = sample_tokens(model, prompt, 20, jax.random.PRNGKey(1), temperature=0.0)
    top1 = sample_tokens(model, prompt, 20, jax.random.PRNGKey(2), top_k=1)
    np.testing.assert_array_equal(greedy, top1)
    # greedy continuation = arg-max of a full forward pass over prompt + continuation
    seq = np.concatenate([prompt, greedy])
    logits, _ = nnx.view(model, deterministic=True)(jnp.asarray(seq[None, :-1]))
    np.testing.assert_array_equal(np.argmax(np.asarray(logits[0, len(prompt) - 1:]), -1),
                                  greedy)
