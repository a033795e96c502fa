"""drumdiff's command line: the entry points that read YAML and arguments (see `cli.py`)."""
