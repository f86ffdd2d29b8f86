"""International airline passengers (Box & Jenkins 1976): monthly totals in thousands.

One series of 144 months, 1949-01 .. 1960-12, no standard split: the only split is ``full``,
one example with ``values`` float32 ``(144, 1)`` (column ``Passengers``), ``dates`` ``(144,)``
str ``"YYYY-MM"`` and ``columns`` ``("Passengers",)``.
"""
from __future__ import annotations

from grux.data.builders.common import SeriesBuilder, SeriesSpec, SourceFile, github_raw

SPEC = SeriesSpec(
    source=SourceFile(
        "airline_passengers/airline-passengers.csv",
        "8cb51be753a718d9be5d76d7e238cc224792754676adc21faa59e954b0201621",
        github_raw("jbrownlee/Datasets", "d20fcb6402ae34e653d4513b00f39257bb37ed7f",
                   "airline-passengers.csv")),
    columns=("Passengers",), rows=144, borders={})


class AirlinePassengers(SeriesBuilder, skip_registration=True):
    """The monthly airline passengers series (``full`` split only)."""

    name = "airline_passengers"
    SPEC = SPEC
    DESCRIPTION = __doc__
    HOMEPAGE = "https://github.com/jbrownlee/Datasets"
    CITATION = "Box & Jenkins 1976, Time series analysis: forecasting and control"
