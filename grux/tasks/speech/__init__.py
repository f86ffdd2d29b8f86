"""Speech recognition building blocks (issue 13, in progress): log-mel features and
SpecAugment computed inside the jit-compiled step (:mod:`.features`), the CTC loss and
greedy / prefix-beam decoding (:mod:`.ctc`). The task, its configs and ``grux-transcribe``
build on these."""
