"""Forecast-vs-actual PNG of a trained forecasting run (see grux/tasks/forecast_plot.py).

    python scripts/plot_forecast.py --workdir runs/etth1-24 --windows 0,1000 --channel OT \\
        --out etth1.png
"""
import sys

from grux.tasks.forecast_plot import main

if __name__ == "__main__":
    sys.exit(main())
