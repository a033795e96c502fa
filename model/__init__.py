"""drumdiff's importable library: network, diffusion, samplers, data, training and evaluation."""

__version__ = "0.1.0"
