"""drumdiff: a neural drum machine backend.

One console entry point with subcommands; each subcommand is `main(argv) -> int` in its own
module, imported only when chosen (so `serve` never imports training code).
"""

from __future__ import annotations

import importlib
import os
import sys

# Torch's OpenMP threads spin-wait by default; on small CPUs that made training steps 3-4x slower
# here. This must be set before torch is first imported, hence at the entry point.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

COMMANDS: dict[str, tuple[str, str]] = {
    "render": ("drumdiff.render", "render one-shots to WAV files"),
    "prepare": ("drumdiff.prepare", "turn folders of samples into a training dataset"),
    "train": ("drumdiff.train", "train or fine-tune a model"),
    "serve": ("drumdiff.serve", "run the daemon (OSC, MIDI, watched folder, audio out)"),
    "export": ("drumdiff.export", "turn a training checkpoint into a shippable fp16 model"),
    "eval": ("drumdiff.evaluate", "judge a checkpoint's sound quality on test kits"),
    "bench": ("drumdiff.bench", "measure speed and memory of each config"),
    "protocol": ("drumdiff.protocol_doc", "print or write the OSC protocol reference"),
    "design": (
        "drumdiff.design",
        "sound design: vary, interpolate, inpaint, morph, scrub checkpoints",
    ),
    "kit": ("drumdiff.kit", "render a whole kit for samplers: SFZ, Hydrogen, Decent Sampler"),
    "finetune": (
        "drumdiff.finetune",
        "fine-tune the shipped model on a folder of your own samples",
    ),
    "distill": ("drumdiff.distill", "distil a model into a few-step student (guidance baked in)"),
}


def usage() -> str:
    lines = [
        __doc__.strip().splitlines()[0],
        "",
        "usage: drumdiff COMMAND [ARGS...]",
        "",
        "commands:",
    ]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "`drumdiff COMMAND --help` describes each command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] == "--version":
        from drumdiff.model import __version__

        print(f"drumdiff {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"drumdiff: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest))


if __name__ == "__main__":
    raise SystemExit(main())
