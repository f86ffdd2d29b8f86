"""grux: GRU-centred sequence models in JAX/Flax NNX."""
__version__ = "0.1.0"
