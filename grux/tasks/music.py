"""Polyphonic music modelling (Boulanger-Lewandowski et al. 2012; Chung et al. 2014, Table 2).

Data: binary piano rolls ``x_1..x_T ∈ {0,1}^88`` (column ``k`` = MIDI note ``21+k``) of the
JSB Chorales, Nottingham, MuseData and Piano-midi.de sets with their standard splits.

Model: ``x_{t-1} → recurrent stack → h_t → logits a_t = W h_t + b ∈ R^88``, with ``x_0 = 0``, so
the first frame is predicted from the initial state too; ``p(x_{t,k} = 1 | x_{<t}) = σ(a_{t,k})``.
With ``model.context_frames = c > 1`` the stack reads the last ``c`` frames at each step,
``[x_{t-1}, x_{t-2}, ..., x_{t-c}] ∈ R^{88c}`` (frames before the piece are 0): the recent
past exactly, as a convolutional model sees it, besides what the state remembers.

Metric (the one of both papers): negative log-likelihood per time step,

    NLL = Σ_sequences Σ_t Σ_{k=1..88} −[x_{t,k} log σ(a_{t,k}) + (1−x_{t,k}) log(1−σ(a_{t,k}))]
          ───────────────────────────────────────────────────────────────────────────────────
                                  Σ_sequences T_sequence

i.e. the 88 keys are summed and the result is averaged over every time step of every sequence
in the split (not per sequence first). Natural log (nats). Evaluation also reports
``nll_after_first_frame``: the same average over steps ``t = 2..T`` only, the protocol of Bai,
Kolter & Koltun 2018 (TCN; their ``poly_music/music_test.py`` feeds ``x_{1..T−1}``, scores
``x_{2..T}`` and divides by ``T − 1`` per piece), so their table can be compared like for like.

Training may crop pieces longer than ``task.max_train_length`` to a random window (a batch's
cost grows with its longest piece); evaluation always scores whole pieces. Batches pad
sequences to a bucket length (next power of two ≥ 32, so a few compiled shapes
serve all lengths) and mask the padding. Training batches walk a fresh seeded permutation of
the training sequences every epoch; a batch is a pure function of its index, so runs resume
exactly.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from grux.data.paths import data_dirs
from grux.data.stream import BatchStream, seeded_rng
from grux.tasks.common import build_recurrent, recurrent_model_config, validate_recurrent_model
from grux.tasks.base import Task, length_sorted_stream, register, weighted

DATASETS = ("jsb_chorales", "nottingham", "musedata", "piano_midi")
KEYS = 88
OUTPUT_ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}


def bucket_length(t: int, minimum: int = 32) -> int:
    """Smallest power of two ``≥ max(t, minimum)``."""
    return max(minimum, 1 << int(np.ceil(np.log2(max(t, 1)))))


def pad_batch(rolls: list[np.ndarray], rows: int) -> dict[str, np.ndarray]:
    """Teacher-forcing batch of ``rows`` rows from piano rolls (missing rows: weight 0).

    Returns ``inputs (rows, L, 88)`` = ``[0, x_1, ..., x_{T−1}]``, ``targets (rows, L, 88)`` =
    ``[x_1, ..., x_T]`` and ``mask (rows, L)``, with ``L = bucket_length(max T)``."""
    length = bucket_length(max(len(r) for r in rolls))
    inputs = np.zeros((rows, length, KEYS), np.float32)
    targets = np.zeros((rows, length, KEYS), np.float32)
    mask = np.zeros((rows, length), np.float32)
    for i, r in enumerate(rolls):
        t = len(r)
        targets[i, :t] = r
        inputs[i, 1:t] = r[:-1]
        mask[i, :t] = 1.0
    return {"inputs": inputs, "targets": targets, "mask": mask}


def transpose_range(roll: np.ndarray, limit: int) -> tuple[int, int]:
    """The shifts in ``[-limit, limit]`` semitones that keep every note of ``roll`` on the 88
    keys: ``(lowest, highest)``, inclusive (``(-limit, limit)`` for a silent roll)."""
    keys = np.flatnonzero(roll.any(axis=0))
    if keys.size == 0:
        return -limit, limit
    return max(-limit, -int(keys[0])), min(limit, KEYS - 1 - int(keys[-1]))


def transpose(roll: np.ndarray, limit: int, u: float) -> np.ndarray:
    """``roll`` moved up by ``s`` semitones (key ``k`` → ``k + s``), ``s`` the integer that
    ``u ∈ [0, 1)`` picks uniformly from :func:`transpose_range`. No note is lost."""
    lo, hi = transpose_range(roll, limit)
    # the range keeps every note on the keyboard, so the roll never wraps a note around
    return np.roll(roll, lo + int(u * (hi - lo + 1)), axis=1)


def context_window(inputs: jax.Array, frames: int) -> jax.Array:
    """``(B, L, K) → (B, L, K·frames)``: step ``t`` holds ``inputs[:, t - j]`` in block ``j``
    for ``j = 0..frames-1`` (zeros where ``t - j < 0``). Causal: step ``t`` sees no later
    step. Padding at the end of a row is shifted like any frame and stays masked."""
    if frames == 1:
        return inputs
    length = inputs.shape[1]
    padded = jnp.pad(inputs, ((0, 0), (frames - 1, 0), (0, 0)))
    return jnp.concatenate([padded[:, frames - 1 - j:frames - 1 - j + length]
                            for j in range(frames)], axis=-1)


def nll_per_step(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """``Σ_k BCE(σ(a_{t,k}), x_{t,k})`` for every step: ``(..., 88) → (...)``."""
    return jnp.sum(optax.sigmoid_binary_cross_entropy(logits, targets), axis=-1)


def nll_metrics(nll: jax.Array, mask: jax.Array, train: bool) -> dict:
    """``loss``: ``(Σ NLL, steps)`` over every unmasked step. In evaluation (whole pieces, so
    position 0 is each piece's first frame) also ``nll_after_first_frame``, the same without
    the first frame of every piece (Bai et al. 2018's protocol)."""
    metrics = {"loss": weighted(nll, mask)}
    if not train:
        metrics["nll_after_first_frame"] = weighted(nll[:, 1:], mask[:, 1:])
    return metrics


class MusicModel(nnx.Module):
    """Recurrent stack over the previous frame → 88 Bernoulli logits per step.

    Regularisation beyond Chung et al.'s set-up (all off by default): ``model.input_dropout``
    on the input frames, ``model.dropout`` between stacked layers, ``model.output_dropout``
    on the top layer's outputs before the logits (Zaremba et al. 2014's non-recurrent
    connections); ``model.variational_dropout`` shares each mask over all time steps of a
    piece (Gal & Ghahramani 2016). ``model.context_frames`` frames are read at each step
    (:func:`context_window`); input dropout acts on the frames before the window, so one
    frame is dropped alike wherever the window holds it.

    ``model.output_hidden = n > 0`` puts one more layer between the stack and the logits, a
    deep output (Pascanu et al. 2014, "How to construct deep recurrent neural networks"):
    ``a_t = W_2 φ(W_1 h_t + b_1) + b_2`` with ``φ = model.output_activation`` and the output
    dropout on ``h_t`` and on ``φ(·)``; 0 (default) is the plain ``a_t = W h_t + b``."""

    def __init__(self, m: ml_collections.ConfigDict, rngs: nnx.Rngs):
        self.context_frames = m.context_frames
        self.rnn = build_recurrent(m, KEYS * m.context_frames, rngs,
                                   variational_dropout=m.variational_dropout)
        self.deep = (nnx.Linear(m.hidden, m.output_hidden, rngs=rngs)
                     if m.output_hidden else None)
        self.activation = OUTPUT_ACTIVATIONS[m.output_activation]
        self.head = nnx.Linear(m.output_hidden or m.hidden, KEYS, rngs=rngs)
        shared = (1,) if m.variational_dropout else ()
        self.in_drop = nnx.Dropout(m.input_dropout, broadcast_dims=shared)
        self.out_drop = nnx.Dropout(m.output_dropout, broadcast_dims=shared)

    def __call__(self, inputs, mask, rngs=None):
        if rngs is None:
            out, _ = self.rnn(context_window(inputs, self.context_frames), mask=mask)
            return self.output(out, lambda y, _: y)
        x = self.in_drop(inputs, rngs=jax.random.fold_in(rngs, 1))
        out, _ = self.rnn(context_window(x, self.context_frames), mask=mask, rngs=rngs)
        return self.output(out, lambda y, k: self.out_drop(y, rngs=jax.random.fold_in(rngs, k)))

    def output(self, out, drop):
        """The logits from the stack's outputs; ``drop(y, k)`` is the output dropout with
        stream ``k`` (the identity in evaluation)."""
        out = drop(out, 2)
        if self.deep is not None:
            out = drop(self.activation(self.deep(out)), 3)
        return self.head(out)


@register
class MusicTask(Task):
    name = "music"
    unit = "frames"

    @staticmethod
    def default_config() -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict({
            "task": {"name": "music", "dataset": "jsb_chorales",
                     # > 0: train on random windows of at most this many steps of longer pieces
                     # (evaluation always scores whole pieces); 0: whole pieces
                     "max_train_length": 0,
                     # > 0: transpose every training piece by a random whole number of
                     # semitones in [-transpose, transpose], limited per piece so that no
                     # note leaves the 88 keys (augmentation; evaluation is never shifted)
                     "transpose": 0},
            "model": recurrent_model_config(hidden=46, input_dropout=0.0, output_dropout=0.0,
                                            variational_dropout=False,
                                            # frames the stack reads at each step: the
                                            # previous one (1), or the last c
                                            context_frames=1,
                                            # > 0: units of a deep output layer between
                                            # the stack and the logits (0: none)
                                            output_hidden=0, output_activation="tanh"),
        })

    @staticmethod
    def validate(config):
        if config.task.dataset not in DATASETS:
            raise ValueError(f"config.task.dataset must be one of {DATASETS}, got "
                             f"{config.task.dataset!r}")
        if config.task.max_train_length < 0:
            raise ValueError("config.task.max_train_length must be >= 0, got "
                             f"{config.task.max_train_length}")
        if config.task.transpose < 0 or config.task.transpose >= KEYS:
            raise ValueError(f"config.task.transpose must be in [0, {KEYS}), got "
                             f"{config.task.transpose}")
        validate_recurrent_model(config.model)
        if not (isinstance(config.model.context_frames, int)
                and config.model.context_frames >= 1):
            raise ValueError("config.model.context_frames must be an integer >= 1, got "
                             f"{config.model.context_frames!r}")
        if not (isinstance(config.model.output_hidden, int)
                and config.model.output_hidden >= 0):
            raise ValueError("config.model.output_hidden must be an integer >= 0, got "
                             f"{config.model.output_hidden!r}")
        if config.model.output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(f"config.model.output_activation must be one of "
                             f"{tuple(OUTPUT_ACTIVATIONS)}, got "
                             f"{config.model.output_activation!r}")
        for field in ("input_dropout", "output_dropout"):
            if not 0.0 <= config.model[field] < 1.0:
                raise ValueError(f"config.model.{field} must be in [0, 1), got "
                                 f"{config.model[field]}")

    def __init__(self, config):
        super().__init__(config)
        self._splits: dict[str, list[np.ndarray]] = {}

    def rolls(self, split: str) -> list[np.ndarray]:
        if split not in self._splits:
            from grux.data import datasets  # TFDS is imported on first data access
            self._splits[split] = datasets.piano_rolls(
                self.config.task.dataset, split,
                **data_dirs(self.config))
        return self._splits[split]

    def build_model(self, rngs):
        return MusicModel(self.config.model, rngs)

    def steps_per_epoch(self, batch_size: int) -> int:
        return -(-len(self.rolls("train")) // batch_size)

    def train_stream(self, batch_size, process_index, process_count):
        rolls, seed = self.rolls("train"), self.config.seed
        per_epoch = self.steps_per_epoch(batch_size)
        crop = self.config.task.max_train_length
        shift = self.config.task.transpose

        def global_batch(i):
            epoch, j = divmod(i, per_epoch)
            order = seeded_rng(seed, 0, epoch).permutation(len(rolls))
            pick = [rolls[k] for k in order[j * batch_size:(j + 1) * batch_size]]
            if crop:
                starts = seeded_rng(seed, 1, i).random(len(pick))
                pick = [r[int(u * (len(r) - crop + 1)):][:crop] if len(r) > crop else r
                        for r, u in zip(pick, starts)]
            if shift:
                draws = seeded_rng(seed, 2, i).random(len(pick))
                pick = [transpose(r, shift, u) for r, u in zip(pick, draws)]
            return pad_batch(pick, batch_size)

        return BatchStream(global_batch, batch_size, None, process_index=process_index,
                           process_count=process_count)

    def eval_streams(self, batch_size, process_index, process_count):
        return {split: length_sorted_stream(self.rolls(split), len, batch_size, pad_batch,
                                            process_index, process_count)
                for split in ("validation", "test")}

    def loss(self, model, batch, *, rng, carry, train):
        logits = model(batch["inputs"], batch["mask"], rngs=rng if train else None)
        return nll_metrics(nll_per_step(logits, batch["targets"]), batch["mask"], train), carry

    def report(self, results: dict) -> list[str]:
        test = results.get("test", {}).get("loss")
        if test is None:
            return []
        return [f"test NLL {test:.2f} nats per time step ({self.config.task.dataset}, "
                f"{self.config.model.cell} {self.config.model.hidden})"]
