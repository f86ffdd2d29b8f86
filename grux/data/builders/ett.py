"""ETT, Electricity Transformer Temperature (Zhou et al., Informer, AAAI 2021).

Configs ``etth1``, ``etth2`` (hourly, 17,420 rows, 2016-07-01 00:00 .. 2018-06-26 19:00) and
``ettm1``, ``ettm2`` (15-minute, 69,680 rows, .. 2018-06-26 19:45). Each split is one example:
``values`` float32 ``(T, 7)`` with columns HUFL, HULL, MUFL, MULL, LUFL, LULL, OT (target) in
file order, ``dates`` ``(T,)`` str ``"YYYY-MM-DD hh:mm:ss"``, ``columns`` ``(7,)`` str.

Splits are the Informer 12/4/4-month borders (rows ``[start, stop)``):
ETTh ``train`` [0, 8640), ``validation`` [8640, 11520), ``test`` [11520, 14400);
ETTm ``train`` [0, 34560), ``validation`` [34560, 46080), ``test`` [46080, 57600);
rows after the test border are unused by that protocol. ``full`` holds the whole series:
forecasting windows of the validation/test splits start ``lookback`` rows before the split
start (Informer's ``border1 = start - seq_len``), so build them from ``full`` and the borders.
"""
from __future__ import annotations

import dataclasses

import tensorflow_datasets as tfds

from grux.data.builders.common import SeriesBuilder, SeriesSpec, SourceFile, github_raw

COLUMNS = ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT")
_ETDATASET = ("zhouhaoyi/ETDataset", "1d16c8f4f943005d613b5bc962e9eeb06058cf07")
_HICR = ("ljnvs/HiCR-Mamba", "d472c100956ed4373e9ca3700481ce88f8f1e4dd")
_MONTH_ROWS = {"h": 30 * 24, "m": 30 * 24 * 4}  # Informer's 30-day month, per frequency


def informer_borders(freq: str) -> dict[str, tuple[int, int]]:
    """Informer's 12/4/4-month train/validation/test row borders for ``freq`` "h" or "m"."""
    m = _MONTH_ROWS[freq]
    return {"train": (0, 12 * m), "validation": (12 * m, 16 * m), "test": (16 * m, 20 * m)}


@dataclasses.dataclass(eq=False, kw_only=True)
class EttConfig(tfds.core.BuilderConfig):
    """One ETT file as a series spec."""
    spec: SeriesSpec


def _config(name: str, file: str, sha256: str, url: str, freq: str, rows: int) -> EttConfig:
    return EttConfig(name=name, description=f"ETT {file}", spec=SeriesSpec(
        source=SourceFile(f"ett/{file}", sha256, url), columns=COLUMNS, rows=rows,
        borders=informer_borders(freq)))


CONFIGS = [
    _config("etth1", "ETTh1.csv",
            "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066",
            github_raw(*_ETDATASET, "ETT-small/ETTh1.csv"), "h", 17420),
    _config("etth2", "ETTh2.csv",
            "a3dc2c597b9218c7ce1cd55eb77b283fd459a1d09d753063f944967dd6b9218b",
            github_raw(*_ETDATASET, "ETT-small/ETTh2.csv"), "h", 17420),
    # gzip copies, byte-identical to ETDataset's ETTm*.csv once gunzipped.
    _config("ettm1", "ETTm1.csv.gz",
            "73c18304514c26a5cddba02e6538513a0e23b2fbb59752535adbf541c9edc672",
            github_raw(*_HICR, "datasets/ETT-small/ETTm1.csv.gz"), "m", 69680),
    _config("ettm2", "ETTm2.csv.gz",
            "5122051efae7be24b40bedc80ee445bd18298552b940084f0dbe329c5157110a",
            github_raw(*_HICR, "datasets/ETT-small/ETTm2.csv.gz"), "m", 69680),
]


class Ett(SeriesBuilder, skip_registration=True):
    """The four ETT series with Informer splits; see the module docstring."""

    name = "ett"
    BUILDER_CONFIGS = CONFIGS
    DESCRIPTION = __doc__
    HOMEPAGE = "https://github.com/zhouhaoyi/ETDataset"
    CITATION = ("Zhou et al. 2021, Informer: beyond efficient transformer for long sequence "
                "time-series forecasting, AAAI")

    def spec(self):
        return self.builder_config.spec
