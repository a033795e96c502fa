"""Run the drumdiff daemon: the model stays loaded and renders hits on OSC and MIDI triggers.

Replies and the address space are in docs/protocol.md (`drumdiff protocol`). Stops cleanly on
SIGINT/SIGTERM: queued requests are answered `shutting_down`, files in flight are finished.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
import sys
import threading
from types import FrameType

from drumdiff.common import fail, parser, pick_device, resolve_model


def build_parser() -> argparse.ArgumentParser:
    p = parser(__doc__, "serve")
    p.add_argument(
        "--config", help="server YAML (see configs/server.yaml); default: built-in defaults"
    )
    p.add_argument(
        "--checkpoint", help="checkpoint to serve (default: the config's, else the shipped model)"
    )
    p.add_argument(
        "--model-config", help="serve a random-weight model of this model YAML (tests, benchmarks)"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a server config value, e.g. osc.port=9001 (repeatable)",
    )
    p.add_argument("--port", type=int, default=None, help="OSC UDP port (overrides the config)")
    p.add_argument(
        "--folder", default=None, help="watched folder for new hits (overrides the config)"
    )
    p.add_argument("--no-midi", action="store_true", help="do not open MIDI ports")
    p.add_argument("--seed", type=int, default=None, help="seed of the daemon's seed sequence")
    p.add_argument("-v", "--verbose", action="store_true", help="log timings of every stage")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname).1s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from drumdiff.model.errors import ConfigError
    from drumdiff.server.config import load_server_config

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logging.getLogger("drumdiff.server").info("%s: stopping", signal.Signals(signum).name)
        stop.set()

    # Installed before loading: a SIGTERM during the warm-up still exits cleanly.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 <pid>` prints every thread's stack (a hung daemon)
        faulthandler.register(signal.SIGUSR1, all_threads=True)

    overrides = list(args.overrides)
    if args.port is not None:
        overrides.append(f"osc.port={args.port}")
    if args.folder is not None:
        overrides.append(f"writer.folder={args.folder}")
    if args.no_midi:
        overrides.append("midi.enabled=false")
    if args.seed is not None:
        overrides.append(f"engine.seed={args.seed}")
    try:
        config = load_server_config(args.config, overrides)
    except (ConfigError, OSError) as err:
        return fail(str(err))
    # Bind before loading anything: a port already in use fails now, not after the model load.
    from drumdiff.server.osc import bind_udp

    try:
        osc_socket = bind_udp(config.osc.host, config.osc.port)
    except OSError as err:
        return fail(f"{err.strerror} (another drumdiff serve? pick one with --port)")

    # These pull in torch: after the config and the port are known to be fine.
    from drumdiff.model.errors import DrumDiffError
    from drumdiff.server.daemon import Daemon

    try:
        device = pick_device(config.engine.device)
        checkpoint = args.checkpoint or (None if args.model_config else config.checkpoint)
        model = resolve_model(checkpoint, args.model_config, device)
        daemon = Daemon(config, model, osc_socket=osc_socket)
    except (
        DrumDiffError,
        OSError,
        RuntimeError,
    ) as err:  # RuntimeError: e.g. a CUDA device that is not there
        osc_socket.close()
        return fail(str(err))
    try:
        daemon.start()
    except (DrumDiffError, OSError) as err:
        daemon.stop()
        return fail(str(err))
    host, port = daemon.osc_address or ("-", 0)
    midi = daemon.midi.summary if daemon.midi is not None else "off"
    pool = (
        f"pool of {config.engine.pool_size} per class filling (logged when warm)"
        if config.engine.pool_size
        else "no pool"
    )
    print(
        f"drumdiff serve: ready on udp {host}:{port}, writing to {daemon.writer.folder}, MIDI "
        f"{midi}, {pool}",
        flush=True,
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        daemon.stop()
    return 0
