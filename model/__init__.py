"""drumdiff's importable library, by stage: `core` (the model), `render`, `data`, `train`, `judge`;
configuration, errors, audio and WAV files at the top."""

from pathlib import Path

__version__ = "0.1.0"

#: The models shipped inside the installed package.
SHIPPED_WEIGHTS = Path(__file__).resolve().parent / "weights"
DEFAULT_MODEL = SHIPPED_WEIGHTS / "default.pt"
DEFAULT_CLASSIFIER = SHIPPED_WEIGHTS / "classifier.pt"
