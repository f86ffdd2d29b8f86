"""Forecast-vs-actual PNG of a trained forecasting run: ``grux-plot-forecast``.

    grux-plot-forecast --workdir runs/etth1-24 --split test --windows 0,1000 --channel OT \\
        --output etth1.png

One panel per chosen evaluation window (look-back, actual, forecast with its 80 % interval
for a Gaussian head, naive and linear baselines); see :mod:`grux.tasks.forecast.plots`.
"""
from __future__ import annotations

import argparse
import sys

from grux.infer.loader import add_workdir_flags, fail, load_or_exit

PROG = "grux-plot-forecast"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    add_workdir_flags(p, "forecast")
    p.add_argument("--output", "--out", dest="output", required=True, help="PNG path")
    p.add_argument("--split", default="test", choices=("validation", "test"))
    p.add_argument("--windows", default="0", help="comma-separated window indices")
    p.add_argument("--channel", default="-1", help="column name (e.g. OT) or index")
    a = p.parse_args(argv)
    try:
        windows = [int(w) for w in a.windows.split(",")]
    except ValueError:
        p.error(f"--windows must be comma-separated integers, got {a.windows!r}")
    task, model, step = load_or_exit(PROG, a, "forecast")
    from grux.tasks.forecast.plots import plot_forecasts
    try:
        path = plot_forecasts(task, model, step, a.output, split=a.split, windows=windows,
                              channel=a.channel)
    except ValueError as e:
        fail(PROG, str(e))
    print(path)
    return 0


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
