"""Weather (Autoformer benchmark; Max Planck Institute for Biogeochemistry, Jena, 2020).

One series of 52,696 ten-minute rows (2020-01-01 00:10:00 .. 2021-01-01 00:00:00) with 21
variables, ``OT`` last. Each split is one example: ``values`` float32 ``(T, 21)`` in file
column order, ``dates`` ``(T,)`` str, ``columns`` ``(21,)`` str (the header is read as UTF-8:
the file's units contain U+FFFD replacement characters, e.g. ``"SWDR (W/m\\ufffd)"``).

Splits are Autoformer's 70/10/20 % (``int(0.7 T)``, ``T - train - test``, ``int(0.2 T)``):
``train`` [0, 36887), ``validation`` [36887, 42157), ``test`` [42157, 52696); ``full`` is the
whole series. Forecasting windows of validation/test start ``lookback`` rows before the
split start, so build them from ``full`` and the borders.
"""
from __future__ import annotations

from grux.data.builders.common import SeriesBuilder, SeriesSpec, SourceFile, github_raw

ROWS = 52696
COLUMNS = ("p (mbar)", "T (degC)", "Tpot (K)", "Tdew (degC)", "rh (%)", "VPmax (mbar)",
           "VPact (mbar)", "VPdef (mbar)", "sh (g/kg)", "H2OC (mmol/mol)", "rho (g/m**3)",
           "wv (m/s)", "max. wv (m/s)", "wd (deg)", "rain (mm)", "raining (s)",
           "SWDR (W/m\ufffd)", "PAR (\ufffdmol/m\ufffd/s)", "max. PAR (\ufffdmol/m\ufffd/s)",
           "Tlog (degC)", "OT")


def autoformer_borders(rows: int) -> dict[str, tuple[int, int]]:
    """Autoformer's 70/10/20 % train/validation/test row borders."""
    train, test = int(rows * 0.7), int(rows * 0.2)
    return {"train": (0, train), "validation": (train, rows - test), "test": (rows - test, rows)}


SPEC = SeriesSpec(
    source=SourceFile(
        "weather/weather.csv.gz",
        "862e9b447a3933f14b6f2d3d686a35d3adb5a486f97acfa46869be0e4bb682db",
        github_raw("ljnvs/HiCR-Mamba", "d472c100956ed4373e9ca3700481ce88f8f1e4dd",
                   "datasets/weather/weather.csv.gz")),
    columns=COLUMNS, rows=ROWS, borders=autoformer_borders(ROWS))


class Weather(SeriesBuilder, skip_registration=True):
    """The Autoformer weather series; see the module docstring."""

    name = "weather"
    SPEC = SPEC
    DESCRIPTION = __doc__
    HOMEPAGE = "https://www.bgc-jena.mpg.de/wetter/"
    CITATION = ("Wu et al. 2021, Autoformer: decomposition transformers with auto-correlation "
                "for long-term series forecasting, NeurIPS")
