"""Word- and character-level language modelling with stateful truncated BPTT.

Model: token embedding → dropout → recurrent stack (dropout between layers) → dropout →
softmax over the vocabulary, optionally with the output matrix tied to the embedding
(Press & Wolf 2017; needs ``embed == hidden``). Dropout is Zaremba et al. (2014)'s: on the
non-recurrent connections only; ``variational_dropout`` shares one mask over all time steps
of a sequence (Gal & Ghahramani 2016).

Data (Zaremba et al. 2014, Mikolov's batching): a split is one token stream (word: each line's
tokens + ``<eos>``; PTB char: each line's symbols + ``<eos>``; tiny Shakespeare: characters;
``synthetic``: a generated toy corpus, :func:`grux.data.synthetic.synthetic_text`, no files).
It is cut into ``B`` equal rows (the last ``N mod B`` tokens dropped), and batch ``w`` is the
window ``[wT, (w+1)T)`` of every row, target = the next token. The recurrent state is carried
from window to window (gradients stop at the boundary) and reset at the start of every epoch.
Evaluation runs over every window of the split (the last one padded and masked), also
carrying the state.

Metrics: ``loss`` = mean negative log-likelihood per token in nats; ``perplexity`` =
``exp(loss)`` (word level); ``bpc`` = ``loss / ln 2`` bits per character (char level).
"""
from __future__ import annotations

import collections
import json
import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from grux.data.paths import data_dirs
from grux.data.stream import BatchStream
from grux.data.synthetic import synthetic_text
from grux.tasks.common import (build_recurrent, recurrent_model_config, uniform_init,
                               validate_recurrent_model)
from grux.tasks.base import Task, register, reset_rows, swap_batch_axis, weighted

LEVELS = {"ptb": "word", "ptb_char": "char", "tiny_shakespeare": "char", "synthetic": "word"}
SYNTHETIC_LINES = {"train": 4000, "validation": 400, "test": 400}
EOS, UNK = "<eos>", "<unk>"
VOCAB_FILE = "vocab.json"


def tokenize(dataset: str, lines: list[str]) -> list[str]:
    """Token stream of a split: PTB (word and char) = each line's whitespace-separated tokens
    followed by ``<eos>``; tiny Shakespeare = the characters of the text."""
    if dataset == "tiny_shakespeare":
        return [c for text in lines for c in text]
    return [tok for line in lines for tok in line.split() + [EOS]]


def detokenize(dataset: str, tokens: list[str]) -> str:
    """Readable text: PTB word → spaces, ``<eos>`` → newline; PTB char → ``_`` is a space."""
    if dataset == "tiny_shakespeare":
        return "".join(tokens)
    if dataset == "ptb_char":
        return "".join("\n" if t == EOS else " " if t == "_" else t for t in tokens)
    return " ".join(tokens).replace(f" {EOS} ", "\n").replace(EOS, "\n")


def prompt_tokens(dataset: str, text: str) -> list[str]:
    """Tokens of free text typed by a user, preceded by a start-of-line token (``<eos>`` or
    ``\\n``): PTB word = words; PTB char = characters with spaces as ``_``; Shakespeare = chars."""
    if dataset == "tiny_shakespeare":
        return ["\n"] + list(text)
    if dataset == "ptb_char":
        return [EOS] + ["_" if c == " " else c for c in " ".join(text.split())]
    return [EOS] + text.split()


def build_vocab(tokens: list[str]) -> list[str]:
    """Tokens by descending training frequency, ties alphabetical (deterministic)."""
    counts = collections.Counter(tokens)
    return sorted(counts, key=lambda t: (-counts[t], t))


def batchify(ids: np.ndarray, rows: int) -> np.ndarray:
    """``(N,) → (rows, N // rows)``: row ``r`` is the ``r``-th contiguous slice of the stream."""
    n = len(ids) // rows
    if n < 2:
        raise ValueError(f"a stream of {len(ids)} tokens is too short for {rows} rows")
    return ids[:rows * n].reshape(rows, n)


def window_batch(data: np.ndarray, w: int, bptt: int, epoch_start: bool) -> dict:
    """Window ``w`` of a batchified stream: inputs ``(B, T)``, next-token targets, mask (the
    last window may be short: padded with 0 and masked) and the per-row state reset flag."""
    rows, n = data.shape
    lo, hi = w * bptt, min((w + 1) * bptt, n - 1)
    x = np.zeros((rows, bptt), np.int32)
    y = np.zeros((rows, bptt), np.int32)
    mask = np.zeros((rows, bptt), np.float32)
    x[:, :hi - lo] = data[:, lo:hi]
    y[:, :hi - lo] = data[:, lo + 1:hi + 1]
    mask[:, :hi - lo] = 1.0
    reset = np.full((rows,), 1.0 if epoch_start else 0.0, np.float32)
    return {"inputs": x, "targets": y, "mask": mask, "reset": reset}


class LanguageModel(nnx.Module):
    """Embedding → recurrent stack → (tied) softmax layer; threads the state in and out."""

    def __init__(self, vocab_size: int, m: ml_collections.ConfigDict, rngs: nnx.Rngs):
        embed = m.embed or m.hidden
        self.embed = nnx.Embed(vocab_size, embed, rngs=rngs)
        self.rnn = build_recurrent(m, embed, rngs, variational_dropout=m.variational_dropout)
        self.drop = nnx.Dropout(m.dropout, broadcast_dims=(1,) if m.variational_dropout else (),
                                rngs=rngs)
        self.tied = m.tie_weights
        if self.tied:
            self.out_bias = nnx.Param(jnp.zeros((vocab_size,)))
        else:
            self.head = nnx.Linear(m.hidden, vocab_size, rngs=rngs)

    def __call__(self, tokens, state=None, rngs=None):
        keys = [None] * 3 if rngs is None else list(jax.random.split(rngs, 3))
        x = self.drop(self.embed(tokens), rngs=keys[0])
        h, final = self.rnn(x, initial_state=state, rngs=keys[1])
        h = self.drop(h, rngs=keys[2])
        if self.tied:
            logits = self.embed.attend(h) + self.out_bias[...]
        else:
            logits = self.head(h)
        return logits, final


@register
class LanguageModelTask(Task):
    name = "lm"
    unit = "tok"

    @staticmethod
    def default_config() -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict({
            "task": {"name": "lm", "dataset": "ptb", "bptt": 35},
            "model": recurrent_model_config(
                formulation="cudnn", hidden=200, num_layers=2, embed=0,
                variational_dropout=False, tie_weights=False, init_scale=0.1),
        })

    @staticmethod
    def validate(config):
        if config.task.dataset not in LEVELS:
            raise ValueError(f"config.task.dataset must be one of {tuple(LEVELS)}, got "
                             f"{config.task.dataset!r}")
        if config.task.bptt < 1:
            raise ValueError(f"config.task.bptt must be >= 1, got {config.task.bptt}")
        m = config.model
        validate_recurrent_model(m)
        if m.embed < 0 or m.init_scale < 0:
            raise ValueError("config.model.embed and config.model.init_scale must be >= 0")
        if m.tie_weights and (m.embed or m.hidden) != m.hidden:
            raise ValueError(f"config.model.tie_weights needs embed == hidden, got embed "
                             f"{m.embed} and hidden {m.hidden}")

    def __init__(self, config):
        super().__init__(config)
        self.level = LEVELS[config.task.dataset]
        self._tokens: dict[str, list[str]] = {}
        self._vocab: list[str] | None = None

    # ------------------------------------------------------------------ data
    def tokens(self, split: str) -> list[str]:
        if split not in self._tokens and self.config.task.dataset == "synthetic":
            seed = ("train", "validation", "test").index(split)
            self._tokens[split] = tokenize("synthetic", synthetic_text(seed,
                                                                       SYNTHETIC_LINES[split]))
        if split not in self._tokens:
            from grux.data import datasets  # TFDS is imported on first data access
            lines = datasets.text_lines(self.config.task.dataset, split,
                                        **data_dirs(self.config))
            self._tokens[split] = tokenize(self.config.task.dataset, lines)
        return self._tokens[split]

    @property
    def vocab(self) -> list[str]:
        if self._vocab is None:
            vocab = build_vocab(self.tokens("train"))
            seen = set(vocab)
            if UNK not in seen and any(t not in seen for s in ("validation", "test")
                                       for t in self.tokens(s)):
                vocab.append(UNK)
            self._vocab = vocab
        return self._vocab

    def encode(self, tokens: list[str]) -> np.ndarray:
        index = {t: i for i, t in enumerate(self.vocab)}
        unk = index.get(UNK)
        out = np.empty(len(tokens), np.int32)
        for i, t in enumerate(tokens):
            j = index.get(t, unk)
            if j is None:
                raise ValueError(f"token {t!r} is not in the vocabulary")
            out[i] = j
        return out

    def save_artifacts(self, workdir):
        with open(os.path.join(workdir, VOCAB_FILE), "w") as f:
            json.dump({"dataset": self.config.task.dataset, "tokens": self.vocab}, f)

    def load_artifacts(self, workdir):
        with open(os.path.join(workdir, VOCAB_FILE)) as f:
            saved = json.load(f)
        if saved["dataset"] != self.config.task.dataset:
            raise ValueError(f"{workdir}/{VOCAB_FILE} is for {saved['dataset']!r}, the config "
                             f"for {self.config.task.dataset!r}")
        self._vocab = saved["tokens"]

    def _stream(self, split, batch_size, infinite, pi, pc):
        data = batchify(self.encode(self.tokens(split)), batch_size)
        bptt = self.config.task.bptt
        windows = -(-(data.shape[1] - 1) // bptt)

        def global_batch(i):
            epoch, w = divmod(i, windows)
            return window_batch(data, w, bptt, epoch_start=(w == 0))

        return BatchStream(global_batch, batch_size, None if infinite else windows,
                           process_index=pi, process_count=pc)

    def train_stream(self, batch_size, process_index, process_count):
        return self._stream("train", batch_size, True, process_index, process_count)

    def eval_streams(self, batch_size, process_index, process_count):
        return {s: self._stream(s, batch_size, False, process_index, process_count)
                for s in ("validation", "test")}

    # ------------------------------------------------------------------ model
    def build_model(self, rngs):
        model = LanguageModel(len(self.vocab), self.config.model, rngs)
        if self.config.model.init_scale > 0:
            uniform_init(model, rngs.params(), self.config.model.init_scale)
        return model

    def initial_carry(self, model, batch_size):
        return {"state": swap_batch_axis(model.rnn.initial_state(batch_size))}

    def loss(self, model, batch, *, rng, carry, train):
        state = swap_batch_axis(reset_rows(carry["state"], batch["reset"]))
        logits, final = model(batch["inputs"], state, rngs=rng if train else None)
        nll = optax.softmax_cross_entropy_with_integer_labels(
            logits.astype(jnp.float32), batch["targets"])
        new_carry = {"state": jax.lax.stop_gradient(swap_batch_axis(final))}
        return {"loss": weighted(nll, batch["mask"])}, new_carry

    def summarize(self, metrics):
        out = dict(metrics)
        if "loss" in out:
            if self.level == "word":
                out["perplexity"] = math.exp(min(out["loss"], 700.0))
            else:
                out["bpc"] = out["loss"] / math.log(2.0)
        return out

    def report(self, results):
        test = results.get("test")
        if not test:
            return []
        what = (f"perplexity {test['perplexity']:.2f}" if self.level == "word"
                else f"{test['bpc']:.3f} bits per character")
        return [f"test {what} ({self.config.task.dataset}, {self.config.model.cell} "
                f"{self.config.model.num_layers}x{self.config.model.hidden})"]


def sample_tokens(model: LanguageModel, prompt: np.ndarray, length: int, key: jax.Array, *,
                  temperature: float = 1.0, top_k: int = 0) -> np.ndarray:
    """Continue ``prompt`` (``(P,)`` ids, ``P ≥ 1``) by ``length`` ids drawn from the model.

    The prompt is read in one pass; then each step feeds the previous draw back in (a
    ``lax.scan`` under one ``jit``). ``temperature = 0`` takes the arg-max; ``top_k > 0`` keeps
    the ``k`` most likely tokens before sampling."""
    if len(prompt) < 1:
        raise ValueError("sampling needs a prompt of at least one token")
    # Inference: dropout off (a model trained with dropout would otherwise draw masks).
    model = nnx.view(model, deterministic=True, raise_if_not_found=False)
    graphdef, params = nnx.split(model)

    def pick(logits, k):
        if temperature == 0:
            return jnp.argmax(logits, -1).astype(jnp.int32)
        logits = logits / temperature
        if top_k > 0:
            kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
            logits = jnp.where(logits < kth, -jnp.inf, logits)
        return jax.random.categorical(k, logits).astype(jnp.int32)

    @jax.jit
    def run(params, prompt, key):
        m = nnx.merge(graphdef, params)
        logits, state = m(prompt[None, :])
        keys = jax.random.split(key, length)

        def step(carry, k):
            tok, state = carry
            logits, state = m(tok[None, None], state)
            nxt = pick(logits[0, -1], k)
            return (nxt, state), nxt

        first = pick(logits[0, -1], keys[0])
        _, rest = jax.lax.scan(step, (first, state), keys[1:])
        return jnp.concatenate([first[None], rest])

    return np.asarray(run(params, jnp.asarray(prompt, jnp.int32), key))
