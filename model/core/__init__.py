"""The model itself: the network, its diffusion and model space, samplers, checkpoints and
runtimes."""
