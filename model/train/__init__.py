"""Training: the trainer, fine-tuning on a folder of sounds and distillation into a few-step
student."""
