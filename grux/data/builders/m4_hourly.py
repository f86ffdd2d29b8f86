"""M4 competition, hourly subset (Makridakis et al. 2020): 414 series H1..H414.

Splits follow the two source files: ``train`` = the series' histories (``Hourly-train.csv``,
700..960 values each), ``test`` = their next 48 values (``Hourly-test.csv``, the forecast
horizon). Each split has 414 examples in file order (example i of both splits is the same
series): ``id`` str (``"H1"``...), ``values`` float32 ``(T,)`` (ragged in ``train``, 48 in
``test``).
"""
from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from grux.data.builders.common import GruxBuilder, SourceFile, github_raw, read_csv_rows

NUM_SERIES = 414
_M4 = ("Mcompetitions/M4-methods", "6c1067e5a57161249b17289a565178dc7a3fb3ca")

SOURCES = {
    "train": SourceFile(
        "m4_hourly/Hourly-train.csv",
        "ea59b7783573c49077a835ab6465c7d66f1474783360f310988a9a737fbca62f",
        github_raw(*_M4, "Dataset/Train/Hourly-train.csv")),
    "test": SourceFile(
        "m4_hourly/Hourly-test.csv",
        "71a57fccb15e534d973626ada4fb87febf789e9317715b7cc6dd3b5f90db6f42",
        github_raw(*_M4, "Dataset/Test/Hourly-test.csv")),
}


def read_m4_csv(path) -> list[tuple[str, np.ndarray]]:
    """``[(id, float32 values), ...]`` from an M4 CSV (one series per row, empty cells
    after a series' last value)."""
    _, *rows = read_csv_rows(path)
    return [(r[0], np.array([v for v in r[1:] if v], dtype=np.float64).astype(np.float32))
            for r in rows]


class M4Hourly(GruxBuilder, skip_registration=True):
    """M4 hourly histories (``train``) and 48-step horizons (``test``)."""

    name = "m4_hourly"
    SOURCES = SOURCES
    DESCRIPTION = __doc__
    HOMEPAGE = "https://github.com/Mcompetitions/M4-methods"
    CITATION = ("Makridakis, Spiliotis, Assimakopoulos 2020, The M4 competition: 100,000 time "
                "series and 61 forecasting methods, Int. J. Forecasting 36(1)")

    def features(self):
        return tfds.features.FeaturesDict({
            "id": tfds.features.Text(),
            "values": tfds.features.Tensor(shape=(None,), dtype=np.float32)})

    def split_examples(self, paths):
        out = {split: read_m4_csv(path) for split, path in paths.items()}
        ids = [[i for i, _ in series] for series in out.values()]
        if any(len(i) != NUM_SERIES for i in ids) or ids[0] != ids[1]:
            raise ValueError(f"{paths}: expected the same {NUM_SERIES} series ids in both files")
        return {split: [{"id": i, "values": v} for i, v in series]
                for split, series in out.items()}
