"""The training system (issue 4, in progress): data-parallel step builders so far."""
