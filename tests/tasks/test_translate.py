"""Translation: tokenizer round trip, batches, padding-correct attention and loss, greedy and
beam search against hand-built models, sacreBLEU on fixed strings, and a short real
Multi30k run through the trainer and grux-translate."""
import io
import itertools
import json
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from grux.decode import beam_search, greedy_search, length_penalty, strip, tile_beams
from grux.tasks.common import recurrent_model_config
from grux.tasks.translate import TranslationTask
from grux.tasks.translate.data import (BOS, EOS, PAD, Tokenizer, epoch_batches, pad_pairs,
                                       train_tokenizer)
from grux.tasks.translate.model import RNNSearch, additive_attention
from grux.train.config import ConfigError, base_config, validate
from grux.tasks.translate.decoding import Translator, corpus_bleu

V = 12


def tiny_model(seed=0, vocab=V, formulation="cho"):
    m = ml_collections.ConfigDict(recurrent_model_config(
        formulation=formulation, hidden=6, num_layers=2, embed=5, decoder_hidden=7,
        attention=4, deep_output=3))
    return RNNSearch(vocab, m, nnx.Rngs(seed))


# ----------------------------------------------------------------------------- tokenizer
@pytest.fixture(scope="module")
def multi30k(data_dir):
    from grux.data import datasets
    return {s: datasets.parallel_text("multi30k", s, data_dir=str(data_dir))
            for s in ("train", "test_2016_flickr")}


def test_tokenizer_round_trips_and_is_deterministic(multi30k):
    train = multi30k["train"][:2000]
    text = [p["en"] for p in train] + [p["de"] for p in train]
    proto = train_tokenizer(text, 600)
    assert train_tokenizer(text, 600) == proto          # same model on every process
    tok = Tokenizer(proto)
    assert tok.vocab_size == 600
    sentences = [p[k] for p in multi30k["test_2016_flickr"][:300] for k in ("en", "de", "fr")]
    sentences += ["Straße, Œuvre — 東京 ✓ 3½"]           # unseen characters: byte fall-back
    ids = tok.encode(sentences)
    assert all(i not in (PAD, BOS, EOS) for row in ids for i in row)
    assert tok.decode(ids) == [" ".join(s.split()) for s in sentences]  # spaces collapse
    assert 1.5 < np.mean([len(r) / len(s.split()) for r, s in zip(ids, sentences)]) < 4


def test_tokenizer_vocab_size_error_names_the_field():
    with pytest.raises(ValueError, match="config.task.vocab_size=5000"):
        train_tokenizer(["a b c", "d e f"], 5000)


# ----------------------------------------------------------------------------- batches
def test_pad_pairs_teacher_forcing_layout():
    b = pad_pairs([[7, 8, 9], [5]], [[4, 6], [10, 11, 12, 13]], rows=3, bucket=4)
    assert b["src"].shape == (3, 8)                     # longest = 4 + 1 → 8
    np.testing.assert_array_equal(b["src"][0], [7, 8, 9, EOS, 0, 0, 0, 0])
    np.testing.assert_array_equal(b["src_mask"][1], [1, 1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(b["tgt_in"][1], [BOS, 10, 11, 12, 13, 0, 0, 0])
    np.testing.assert_array_equal(b["tgt_out"][1], [10, 11, 12, 13, EOS, 0, 0, 0])
    np.testing.assert_array_equal(b["tgt_mask"][0], [1, 1, 1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(b["src"][2, :2], [EOS, PAD])  # filler row: no weight
    assert b["tgt_mask"][2].sum() == 0


def test_epoch_batches_are_deterministic_similar_length_and_disjoint():
    lengths = np.random.default_rng(0).integers(1, 40, size=1000)
    a = epoch_batches(lengths, 16, seed=3, epoch=0)
    assert [x.tolist() for x in a] == [x.tolist() for x in epoch_batches(lengths, 16, 3, 0)]
    assert [x.tolist() for x in a] != [x.tolist() for x in epoch_batches(lengths, 16, 3, 1)]
    flat = np.concatenate(a)
    assert len(a) == 62 and len(set(flat.tolist())) == len(flat) == 62 * 16
    spread = np.mean([np.ptp(lengths[x]) for x in a])
    assert spread < 0.25 * np.ptp(lengths)              # sorted within chunks


# ----------------------------------------------------------------------------- model
def test_additive_attention_matches_hand_computation():
    r = np.random.default_rng(1)
    q, keys, vals = r.normal(size=(2, 3)), r.normal(size=(2, 4, 3)), r.normal(size=(2, 4, 5))
    v, mask = r.normal(size=(3,)), np.array([[1, 1, 1, 0], [1, 0, 0, 0]])
    c, w = additive_attention(jnp.asarray(q), jnp.asarray(keys), jnp.asarray(vals),
                              jnp.asarray(mask), jnp.asarray(v))
    for b in range(2):
        n = mask[b].sum()
        e = np.array([v @ np.tanh(q[b] + keys[b, j]) for j in range(n)])
        alpha = np.exp(e - e.max()) / np.exp(e - e.max()).sum()
        np.testing.assert_allclose(w[b, :n], alpha, rtol=1e-5)
        assert np.all(np.asarray(w[b, n:]) == 0)
        np.testing.assert_allclose(c[b], alpha @ vals[b, :n], rtol=1e-5, atol=1e-6)


def _batch(src, tgt, rows, bucket):
    return {k: jnp.asarray(x) for k, x in pad_pairs(src, tgt, rows, bucket).items()}


@pytest.mark.parametrize("formulation", ["cho", "cudnn"])
def test_padding_never_changes_outputs_attention_or_loss(formulation):
    model = tiny_model(formulation=formulation)
    src, tgt = [[4, 5, 6, 7, 8], [9, 10]], [[5, 6, 7], [4, 11, 5, 6, 7, 8]]
    small, big = _batch(src, tgt, 2, 1), _batch(src, tgt, 2, 16)   # L = 7 vs 16
    r = np.random.default_rng(0)
    noisy = dict(big)
    for k, m in (("src", "src_mask"), ("tgt_in", "tgt_mask"), ("tgt_out", "tgt_mask")):
        junk = r.integers(4, V, size=big[k].shape)
        noisy[k] = jnp.where(big[m] > 0, big[k], junk)  # garbage in every padded position
    logits_s, att_s = model(small["src"], small["src_mask"], small["tgt_in"])
    logits_n, att_n = model(noisy["src"], noisy["src_mask"], noisy["tgt_in"])
    for i, t in enumerate(tgt):
        n, s = len(t) + 1, len(src[i]) + 1
        np.testing.assert_allclose(logits_n[i, :n], logits_s[i, :n], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(att_n[i, :n, :s], att_s[i, :n, :s], rtol=1e-5, atol=1e-6)
        assert np.all(np.asarray(att_n[i, :n, s:]) == 0)   # padding never attended to
        np.testing.assert_allclose(att_n[i, :n].sum(-1), 1.0, rtol=1e-5)
    task = TranslationTask(base_config("translate"))
    metrics = [task.loss(model, b, rng=None, carry={}, train=False)[0]
               for b in (small, noisy)]
    for name in ("loss", "accuracy"):
        np.testing.assert_allclose(metrics[0][name], metrics[1][name], rtol=1e-5)
    assert float(metrics[0]["loss"][1]) == 4 + 7        # weight = real target tokens + eos
    nll = -jax.nn.log_softmax(logits_s)
    by_hand = sum(float(nll[i, j, small["tgt_out"][i, j]]) for i, t in enumerate(tgt)
                  for j in range(len(t) + 1))
    np.testing.assert_allclose(float(metrics[0]["loss"][0]), by_hand, rtol=1e-5)


def test_decode_step_reproduces_teacher_forcing():
    model = tiny_model(seed=2)
    b = _batch([[4, 5, 6], [7, 8, 9, 10, 11]], [[6, 7, 8, 9], [4, 5]], 2, 1)
    logits, att = model(b["src"], b["src_mask"], b["tgt_in"])
    enc = model.encode(b["src"], b["src_mask"])
    state = enc["state"]
    for t in range(b["tgt_in"].shape[1]):
        logp, state, alpha = model.decode_step(enc, state, b["tgt_in"][:, t])
        np.testing.assert_allclose(logp, jax.nn.log_softmax(logits[:, t]), rtol=1e-4,
                                   atol=1e-5)
        np.testing.assert_allclose(alpha, att[:, t], rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------- decoding
def _model_step(model, enc):
    return lambda s, prev: model.decode_step(enc, s, prev)[:2]


def test_beam_of_one_equals_greedy_and_beam_scores_at_least_greedy():
    model = tiny_model(seed=3)
    b = _batch([[4, 5, 6, 7], [8, 9], [10, 11, 4, 4, 5, 6], [7]], None, 4, 1)
    enc = model.encode(b["src"], b["src_mask"])
    g_tok, g_logp = greedy_search(_model_step(model, enc), enc["state"], 4, bos=BOS, eos=EOS,
                                  pad=PAD, max_len=9)
    b_tok, _, b_logp = beam_search(_model_step(model, enc), enc["state"], 4, 1, bos=BOS,
                                   eos=EOS, pad=PAD, max_len=9, alpha=0.6)
    np.testing.assert_array_equal(g_tok, b_tok)
    np.testing.assert_allclose(g_logp, b_logp, rtol=1e-5)
    tiled = tile_beams(enc, 4)
    _, _, b4 = beam_search(_model_step(model, tiled), tiled["state"], 4, 4, bos=BOS, eos=EOS,
                           pad=PAD, max_len=9, alpha=0.0)
    assert np.all(np.asarray(b4) >= np.asarray(g_logp) - 1e-5)


# A bigram "model": the state is the previous token, log p(next | prev) = TABLE[prev].
# From bos: a (0.5) or b (0.4); after a every continuation is poor (eos 0.3, c 0.3, ...);
# after b, eos has 0.9. Greedy takes a then eos: 0.5·0.3 = 0.15; the best is b eos = 0.36.
A, B, C = 4, 5, 6
PROBS = np.full((7, 7), 1e-3)
PROBS[BOS, [A, B, C]] = [0.5, 0.4, 0.098]
PROBS[A, [EOS, A, B, C]] = [0.3, 0.25, 0.2, 0.247]
PROBS[B, [EOS, A, C]] = [0.9, 0.05, 0.047]
PROBS[C, [EOS, A, B, C]] = [0.25, 0.25, 0.25, 0.247]
PROBS[EOS] = PROBS[PAD] = PROBS[C]
TABLE = np.log(PROBS / PROBS.sum(1, keepdims=True))


def bigram_step(state, prev):
    return jnp.asarray(TABLE)[prev], prev


def brute_force_best(max_len, alpha):
    """Best complete or length-max_len sequence by log p / lp(n), by enumeration."""
    best, best_seq = -np.inf, None
    words = [1, A, B, C, EOS]                   # 1 = unk: any id but pad and bos
    for n in range(1, max_len + 1):
        for seq in itertools.product(words, repeat=n):
            if EOS in seq[:-1] or (n < max_len and seq[-1] != EOS):
                continue
            lp = sum(TABLE[p, y] for p, y in zip((BOS,) + seq[:-1], seq))
            score = lp / float(length_penalty(jnp.asarray(n), alpha))
            if score > best:
                best, best_seq = score, list(seq)
    return best, best_seq


def test_beam_search_finds_the_sequence_greedy_misses():
    start = jnp.full((1,), BOS)
    g, g_logp = greedy_search(bigram_step, start, 1, bos=BOS, eos=EOS, pad=PAD, max_len=4)
    assert strip(g, EOS, PAD) == [[A]]
    np.testing.assert_allclose(g_logp, TABLE[BOS, A] + TABLE[A, EOS], rtol=1e-5)
    tok, _, logp = beam_search(bigram_step, tile_beams(start, 2), 1, 2, bos=BOS, eos=EOS,
                               pad=PAD, max_len=4)
    assert strip(tok, EOS, PAD) == [[B]]
    assert float(logp[0]) > float(g_logp[0])


@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.0])
def test_wide_beam_is_exact_against_enumeration(alpha):
    max_len, beam = 4, 5 ** 4                   # every prefix fits: the search is exact
    best, seq = brute_force_best(max_len, alpha)
    start = jnp.full((2,), BOS)                 # two identical rows: batching is per row
    tok, score, _ = beam_search(bigram_step, tile_beams(start, beam), 2, beam, bos=BOS,
                                eos=EOS, pad=PAD, max_len=max_len, alpha=alpha)
    want = [s for s in seq if s != EOS]
    assert strip(tok, EOS, PAD) == [want, want]
    np.testing.assert_allclose(score, [best, best], rtol=1e-5)


def test_translator_batches_sort_and_greedy_equals_beam_one():
    model = tiny_model(seed=4, vocab=300)
    tok = type("Tok", (), {})()
    srcs = [[10, 20, 30], [40], [50, 60, 70, 80, 90, 100], [5, 6]] * 2
    tr = Translator(model, tok, batch_size=4, bucket=8, max_len=12)
    greedy = tr.translate_ids(srcs, method="greedy")
    assert greedy[:4] == greedy[4:]
    assert greedy == tr.translate_ids(srcs, method="beam", beam=1)
    alone = Translator(model, tok, batch_size=1, bucket=1, max_len=12)
    assert greedy[:4] == alone.translate_ids(srcs[:4], "greedy")  # batching/padding: no effect
    with pytest.raises(ValueError, match="method"):
        tr.translate_ids(srcs, method="sample")


# ----------------------------------------------------------------------------- BLEU
def test_bleu_through_sacrebleu_on_fixed_strings():
    score, line, sig = corpus_bleu(["a b c d e f"], ["a b c d e g"])
    # p1..p4 = 5/6, 4/5, 3/4, 2/3, same length (BP = 1): BLEU = (1/3)^(1/4)
    assert math.isclose(score, 100 * (1 / 3) ** 0.25, rel_tol=1e-6)
    assert "tok:13a" in sig and "nrefs:1" in sig and line.startswith("BLEU = 75.98")
    score, _, _ = corpus_bleu(["a b c d"], ["a b c d e f"])          # brevity: e^(1 - 6/4)
    assert math.isclose(score, 100 * math.exp(-0.5), rel_tol=1e-6)
    score, _, _ = corpus_bleu(["Ein Mann fährt Rad.", "Zwei Hunde."],
                              ["Ein Mann fährt Rad.", "Zwei Hunde."])
    assert math.isclose(score, 100.0)
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        corpus_bleu(["a", "b"], ["a"])


# ----------------------------------------------------------------------------- config
def test_config_errors_name_the_field():
    c = base_config("translate")
    c.task.target = "en"
    with pytest.raises(ConfigError, match="config.task.source and config.task.target"):
        validate(c)
    c = base_config("translate")
    c.model.cell = "lstm"
    with pytest.raises(ConfigError, match="config.model.cell must be 'gru'"):
        validate(c)
    c = base_config("translate")
    c.task.source = "cs"
    with pytest.raises(ConfigError, match="config.task.source must be one of"):
        validate(c)


# ----------------------------------------------------------------------------- real data
def _tiny_config(data_dir, tfds_dir, steps):
    c = base_config("translate")
    c.data_dir, c.tfds_dir = str(data_dir), str(tfds_dir)
    c.task.vocab_size, c.task.tokenizer_sentences, c.task.max_length = 500, 3000, 24
    c.task.bucket, c.task.beam_size = 24, 3                  # train batches: one shape
    for f in ("hidden", "embed", "decoder_hidden", "attention", "deep_output"):
        c.model[f] = 32
    c.batch_size, c.eval.batch_size = 32, 512
    c.num_train_steps = steps
    c.eval.every_steps = c.checkpoint.every_steps = steps
    c.log.every_steps, c.log.tensorboard, c.log.progress = 5, False, False
    c.optimizer.learning_rate = 5e-3
    return c


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    """A 30-step run on real Multi30k through the trainer (one padded length, 24)."""
    from grux.train import train_and_evaluate
    workdir = tmp_path_factory.mktemp("mt")
    c = _tiny_config(data_dir, tmp_path_factory.mktemp("tfds"), 30)
    return workdir, train_and_evaluate(c, str(workdir))


def test_loss_decreases_on_multi30k(trained):
    from grux.train.writers import read_metrics
    workdir, summary = trained
    curve = [r["loss"] for r in read_metrics(workdir) if r.get("split") == "train"]
    assert curve[0] > 5.5 and curve[-1] < curve[0] - 1.0, curve   # from ln 500 ≈ 6.2
    assert summary["final"]["validation"]["perplexity"] < 250      # uniform: 500
    assert (workdir / "spm.model").is_file()


@pytest.mark.slow
def test_grux_translate_decodes_plots_and_scores_a_trained_run(trained, tmp_path, capsys,
                                                               monkeypatch):
    from grux.infer.translate import main
    workdir, _ = trained
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO("A dog runs.\nTwo men.\n"))
    assert main(["--workdir", str(workdir), "--method", "greedy"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    png = tmp_path / "att.png"
    assert main(["--workdir", str(workdir), "--plot-attention", str(png), "--sentence",
                 "A man sleeps."]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["--workdir", str(workdir), "--bleu", "--splits", "test_2016_flickr",
                 "--limit", "24", "--output", str(tmp_path / "bleu.json")]) == 0
    saved = json.loads((tmp_path / "bleu.json").read_text())["results"]["test_2016_flickr"]
    assert saved["sentences"] == 24 and 0 <= saved["bleu"] <= 100
    assert "tok:13a" in saved["signature"] and "signature" in capsys.readouterr().out


def test_translate_cli_errors_are_clear(tmp_path, capsys):
    from grux.infer.translate import main
    with pytest.raises(SystemExit, match="1"):
        main(["--workdir", str(tmp_path)])
    assert "config.json not found" in capsys.readouterr().err


def test_bleu_during_training_equals_grux_translate_on_the_same_checkpoint(trained):
    """The trainer's BLEU evaluator and the command decode and score identically."""
    from grux.infer.loader import load_trained
    from grux.tasks.translate.decoding import Translator, evaluate_bleu
    workdir, summary = trained
    assert summary["step"] == 30 and 0 <= summary["final"]["validation"]["bleu"] <= 100
    task, model, step = load_trained(str(workdir), "latest")
    assert step == 30
    t = task.config.task
    translator = Translator(model, task.tokenizer, bucket=t.bucket)
    ours = evaluate_bleu(task, translator, ["validation", "test_2016_flickr"], method="beam",
                         beam=t.beam_size, alpha=t.length_penalty)
    assert ours["validation"]["bleu"] == pytest.approx(summary["final"]["validation"]["bleu"])
    assert ours["test_2016_flickr"]["bleu"] == pytest.approx(summary["final"]["test"]["bleu"])
    assert ours["validation"]["sentences"] == 1014
