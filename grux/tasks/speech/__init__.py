"""Speech recognition: log-mel features, speed perturbation and SpecAugment computed inside
the jit-compiled step (:mod:`.features`), the CTC loss and greedy / prefix-beam decoding
(:mod:`.ctc`), error rates (:mod:`.error_rates`), the shared front end and CTC acoustic
model (:mod:`.acoustic`), the CTC task family (:mod:`.ctc_task`) and the tasks: isolated
digits (:mod:`.digits`), connected digits (:mod:`.connected`) and LibriSpeech."""
