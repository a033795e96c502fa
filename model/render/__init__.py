"""From a model to finished one-shots: render settings, generation, finishing, sound design and
kits."""
