"""Forecast-vs-actual PNG of a trained forecasting run: the same as ``grux-plot-forecast``
(:mod:`grux.infer.plot_forecast`), kept for the commands documented with this path.

    python scripts/plot_forecast.py --workdir runs/etth1-24 --windows 0,1000 --channel OT \\
        --out etth1.png
"""
import sys

from grux.infer.plot_forecast import main

if __name__ == "__main__":
    sys.exit(main())
