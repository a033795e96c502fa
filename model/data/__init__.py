"""Datasets: preparing folders of samples, augmentation and training batches."""
