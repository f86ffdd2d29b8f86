"""Facts of the M4 competition protocol (Makridakis et al. 2020) shared by the M4 hourly
builder and the forecasting task, in a module that imports nothing heavy."""

HOURLY_HORIZON = 48        # forecast steps of the hourly series
