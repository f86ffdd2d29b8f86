"""Inference commands over trained workdirs, sharing one loader (:mod:`grux.infer.loader`)
and one flag style (``--workdir``, ``--checkpoint best|latest|STEP``, ``--input``,
``--output``): ``grux-sample`` (:mod:`.sample`), ``grux-translate`` (:mod:`.translate`),
``grux-plot-forecast`` (:mod:`.plot_forecast`)."""
