"""The daemon: wires the engine to its transports (OSC, MIDI) and outputs (files, audio).

Threads: the OSC receive loop and the MIDI thread turn messages into commands and call
`handle` (validate and enqueue only); the engine's worker renders; its `on_hit` starts playback
at once and queues the file; the writer thread publishes the file and only then replies `done`.

Replies go where the request came from, by the rules of `protocol.REPLY_ROUTING`: a request's
own `reply_port`, else the port its sender address registered with `hello` (Max and Pd cannot
receive on the port they send from), else the port its host registered last (one-shot senders
such as `oscsend` use a new source port for every message), else `osc.reply_port`, else the
sender's address. Hits triggered over MIDI are announced to every registered client.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from pathlib import Path

import torch

from drumdiff.model import __version__
from drumdiff.model.core.checkpoint import LoadedModel
from drumdiff.model.errors import DrumDiffError
from drumdiff.model.labels import DEFAULT_ROOT_NOTE
from drumdiff.model.render.sound_design import pitch_shift
from drumdiff.server import protocol
from drumdiff.server.audio_out import AudioOut
from drumdiff.server.clients import Clients
from drumdiff.server.config import ServerConfig, loadable_checkpoints
from drumdiff.server.engine import Engine, Hit, Origin, Task, model_name, velocity_gain
from drumdiff.server.errors import LoadError, ProtocolError, RenderError, ServerError, ShuttingDown
from drumdiff.server.kits import KitService
from drumdiff.server.midi import MidiInput
from drumdiff.server.osc import (
    Address,
    ReplyTransport,
    UdpOscServer,
    build_dispatcher,
    dispatch_datagram,
)
from drumdiff.server.protocol import Command, Message, RequestId
from drumdiff.server.sound_design import DesignService
from drumdiff.server.writer import HitWriter, Published, WriteJob

log = logging.getLogger("drumdiff.server")


def memory_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MiB; current is 0 where unknown."""
    peak = 0.0
    try:
        import resource

        scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20
    except ImportError:  # Windows
        pass
    current = 0.0
    try:
        with open("/proc/self/statm") as fh:
            current = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, AttributeError):
        pass
    return current, peak


class Daemon:
    """Build with a config and a loaded model; `start()`, then `stop()` (idempotent)."""

    def __init__(
        self,
        config: ServerConfig,
        model: LoadedModel,
        *,
        transport: ReplyTransport | None = None,
        osc_socket: socket.socket | None = None,
    ) -> None:
        """`osc_socket`: the OSC port, already bound (`server.osc.bind_udp`), so that a busy port
        fails before the model is loaded; None = bind `config.osc` in `start()`."""
        self.config = config
        self._osc_socket = osc_socket
        self.engine = Engine(
            model,
            config.engine,
            note_map=config.note_map(),
            on_hit=self._on_hit,
            on_fail=self._on_fail,
            seed=config.engine.seed,
        )
        self.design = DesignService(self.engine)  # vary, interpolate, inpaint, morph, scrub
        self.writer = HitWriter(config.writer, software=f"drumdiff {__version__}")
        self.kits = KitService(self.engine, self.writer.folder)  # whole kits, on their own thread
        self.audio: AudioOut | None = (
            AudioOut(config.audio_out, model.sample_rate) if config.audio_out.enabled else None
        )
        self.midi: MidiInput | None = (
            MidiInput(config.midi, self._handle_midi) if config.midi.enabled else None
        )
        self.osc: UdpOscServer | None = None
        self._transport = transport  # tests: a LoopbackTransport instead of UDP
        self.clients = Clients(config.osc.reply_port)
        self.published = 0  # hits whose file was written (what `status` reports)
        self._stopping = False
        self._stopped = False
        self._dispatcher = build_dispatcher(self.handle, self._answer_error)

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self.writer.start()
        self.engine.start()
        if self.audio is not None:
            self.audio.start()
        if self._transport is None:
            osc = self.config.osc
            self.osc = UdpOscServer(
                osc.host,
                osc.port,
                handle=self.handle,
                on_error=self._answer_error,
                allow=osc.allow,
                sock=self._osc_socket,
            )
            self._transport = self.osc
            self.osc.start()
        if self.midi is not None:
            self.midi.start()
        log.info(
            "serving %s on %s (engine seed %d, %d classes, pool %d per class) into %s",
            model_name(self.engine.model),
            self.engine.device,
            self.engine.seed,
            len(self.engine.model.classes),
            self.config.engine.pool_size,
            self.writer.folder,
        )

    def stop(self) -> None:
        """Stop taking requests, finish the render in progress and every queued write, close."""
        if self._stopped:
            return
        self._stopped = True
        # Keep listening while the work in flight finishes: every request meanwhile (a ping
        # too) is answered `shutting_down` instead of silence.
        self._stopping = True
        if self.midi is not None:
            self.midi.close()
        self.kits.stop()
        self.engine.stop()
        self.writer.stop()  # the `done` of every finished write is sent from here
        if self.osc is not None:
            self.osc.stop_receiving()
        if self.audio is not None:
            self.audio.close()
        if self._transport is not None:
            self._transport.close()
        elif self._osc_socket is not None:  # stopped before start() took it over
            self._osc_socket.close()
        log.info("stopped after %d hits", self.published)

    @property
    def osc_address(self) -> Address | None:
        return self.osc.address if self.osc is not None else None

    def feed(self, data: bytes, sender: Address) -> None:
        """Handle one datagram as if it had arrived over UDP (socket-free tests)."""
        dispatch_datagram(self._dispatcher, data, sender, self._answer_error)

    # ---- requests --------------------------------------------------------------------------

    def handle(
        self,
        command: Command,
        sender: Address,
        arrived: float | None = None,
        reply_port: int | None = None,
    ) -> None:
        """An OSC command from `sender` (raises ServerError, answered by the transport).

        `reply_port`: the message's own `reply_port`, which overrides where its replies go.
        """
        if self._stopping:
            raise ShuttingDown("the daemon is stopping")
        origin = Origin("osc", sender, reply_port)
        self._dispatch(command, origin, time.perf_counter() if arrived is None else arrived)

    def _handle_midi(self, command: Command, arrived: float) -> None:
        try:
            self._dispatch(command, Origin("midi"), arrived)
        except ServerError as err:
            log.warning("MIDI %s: %s %s", type(command).__name__, err.code, err)
            self._broadcast(protocol.fail(err.request_id, err.code, str(err)))

    def _dispatch(self, command: Command, origin: Origin, arrived: float) -> None:
        if isinstance(command, protocol.RenderRequest):
            self.engine.submit(command, origin, arrived)
        elif isinstance(command, protocol.Hello):
            self._hello(command, origin)
        elif isinstance(command, protocol.StatusQuery):
            e = self.engine
            self.reply(
                origin,
                protocol.status_reply(
                    model_name(e.model),
                    str(e.device),
                    e.queue_length,
                    e.pool_fill(),
                    time.monotonic() - e.started,
                    self.published,
                ),
            )
        elif isinstance(command, protocol.Ping):
            self.reply(origin, protocol.pong(command.nonce))
        elif isinstance(command, protocol.SetParam):
            value = self.engine.set_param(command.param, command.value)
            log.info("set %s %s (%s)", command.param, value, origin.transport)
            self.reply(origin, protocol.set_reply(command.param, value))
        elif isinstance(command, protocol.Load):
            self._load(command, origin, arrived)
        elif isinstance(command, protocol.ClassesQuery):
            self.reply(origin, protocol.classes_reply(self.engine.model.classes))
        elif isinstance(command, protocol.KitRequest):
            rid = self.kits.submit(command, lambda message: self.reply(origin, message))
            log.info("kit %s %r started (%s)", rid, command.name, origin.transport)
        elif isinstance(command, protocol.ModelsQuery):
            paths = loadable_checkpoints(self.config.model_dirs())
            self.reply(origin, protocol.models_reply([str(p) for p in paths]))
        elif isinstance(command, protocol.StatsQuery):
            self.reply(origin, protocol.stats_reply(self.stats()))
        elif isinstance(command, protocol.DesignRequest):
            self.design.submit(command, origin, arrived)
        else:  # a parser was added without a handler
            raise ProtocolError(f"{type(command).__name__} is not served yet")

    def stats(self) -> dict[str, int | float]:
        """Resource and engine figures for `/drumdiff/stats`."""
        e = self.engine
        batches = list(e.batches)
        gpu = gpu_peak = 0.0
        if e.device.type == "cuda":
            gpu = torch.cuda.memory_allocated(e.device) / 2**20
            gpu_peak = torch.cuda.max_memory_allocated(e.device) / 2**20
        rss, peak = memory_mb()
        return {
            "rss_mb": round(rss, 1),
            "peak_rss_mb": round(peak, 1),
            "gpu_mb": round(gpu, 1),
            "gpu_peak_mb": round(gpu_peak, 1),
            "busy_rejections": e.busy_rejections,
            "mean_batch": round(sum(batches) / len(batches), 2) if batches else 0.0,
            "pool_ready": sum(e.pool_counts().values()),
            "pool_warm_s": round(e.pool_warm_after, 2) if e.pool_warm_after is not None else -1.0,
            "writer_pending": self.writer.pending,
        }

    def _hello(self, hello: protocol.Hello, origin: Origin) -> None:
        if origin.address is None:
            raise ProtocolError("hello is an OSC message")
        client = self.clients.register(origin.address, hello.reply_port, hello.client_name)
        client_id = client.client_id
        log.info(
            "hello from %s:%d (%s): client %d, replies to port %d",
            origin.address[0],
            origin.address[1],
            hello.client_name or "unnamed",
            client_id,
            hello.reply_port,
        )
        self.reply(origin, protocol.hello_reply(__version__, client_id))

    def _load(self, load: protocol.Load, origin: Origin, arrived: float) -> None:
        try:
            path = self.checkpoint_path(load.path)
        except LoadError as err:
            log.warning("load %s refused: %s", load.path[:200], err)
            self.reply(origin, protocol.fail(protocol.LOAD_ID, err.code, str(err)))
            return

        def done(result: LoadedModel | DrumDiffError) -> None:
            ms = 1e3 * (time.perf_counter() - arrived)
            if isinstance(result, LoadedModel):
                log.info(
                    "load %s: step %d, %d classes, %.0f ms",
                    path,
                    result.step,
                    len(result.classes),
                    ms,
                )
                self.reply(origin, protocol.loaded(str(path), result.step))
            else:
                code = getattr(result, "code", "bad_checkpoint")
                log.warning("load %s failed (old model kept): %s", path, result)
                self.reply(origin, protocol.fail(protocol.LOAD_ID, code, str(result)))

        self.engine.request_load(path, done)

    def checkpoint_path(self, text: str) -> Path:
        """The checkpoint a `load` names, if it lies inside a configured model folder."""
        folders = self.config.model_dirs()
        try:
            raw = Path(text).expanduser()
        except (RuntimeError, ValueError):  # "~nosuchuser/...", a NUL byte: no such file anyway
            raw = Path(text)
        candidates = [raw] if raw.is_absolute() else [folder / raw for folder in folders]
        inside = escaped = False
        for candidate in candidates:
            try:
                resolved = candidate.resolve()  # follows symlinks: no escaping through a link
            except (OSError, ValueError, RuntimeError):
                continue
            if not any(resolved.is_relative_to(folder) for folder in folders):
                try:
                    escaped = escaped or os.path.lexists(candidate)  # e.g. a link pointing outside
                except (OSError, ValueError):
                    pass
                continue
            inside = True
            try:
                is_file = resolved.is_file()
            except (OSError, ValueError):  # e.g. a name longer than the file system allows
                is_file = False
            if is_file:
                return resolved
        if inside and not escaped:
            raise LoadError(f"no checkpoint {text!r} in the model folders", code="not_found")
        raise LoadError(
            f"{text!r} is outside the configured model folders {[str(f) for f in folders]}",
            code="not_allowed",
        )

    # ---- results (worker and writer threads) ------------------------------------------------

    def _on_hit(self, hit: Hit) -> None:
        task = hit.task
        self.design.record(hit)  # so `vary last`, `inpaint <id>`... can refer to it
        amp = 10.0 ** (task.gain_db / 20.0) * velocity_gain(
            task.velocity, self.config.engine.velocity_exponent
        )
        audio = hit.audio
        root = task.note if task.note is not None else DEFAULT_ROOT_NOTE
        if task.pitch:
            audio = pitch_shift(audio, hit.sample_rate, task.pitch)
            root = min(127, max(0, round(root + task.pitch)))
        if self.audio is not None:
            self.audio.play(audio, amp)  # before the file: the pad should sound now
        file_amp = amp if self.config.engine.velocity_to_file else 10.0 ** (task.gain_db / 20.0)
        samples = audio if file_amp == 1.0 else audio * file_amp
        s = task.settings
        job = WriteJob(
            samples=samples,
            sample_rate=hit.sample_rate,
            drum_class=task.drum_class,
            note=task.note,
            velocity=task.velocity,
            seed=int(task.seed or 0),
            root_note=root,
            params={
                **s.describe(task.class_arg),
                "gain_db": task.gain_db,
                "model": hit.model_name,
                "source": hit.source,
                "request_id": task.request_id,
                **({"pitch": task.pitch} if task.pitch else {}),
                **({"design": task.extra["info"]} if "info" in task.extra else {}),
            },
        )
        self.writer.submit(job, lambda result: self._published(hit, result))

    def _published(self, hit: Hit, result: Published | Exception) -> None:
        task = hit.task
        ms = 1e3 * (time.perf_counter() - task.submitted)
        if isinstance(result, Exception):
            # A full, read-only or missing folder is not a daemon bug: `render_error`, not
            # `internal`.
            self._on_fail(
                task, RenderError(f"writing the file failed: {result}", request_id=task.request_id)
            )
            return
        self.published += 1
        log.info(
            "render id=%s %s note=%s vel=%d seed=%s %s%s %.1f ms -> %s",
            task.request_id,
            task.drum_class,
            task.note if task.note is not None else "-",
            task.velocity,
            task.seed,
            hit.source,
            f" batch={hit.batch_size}" if hit.source == "fresh" else "",
            ms,
            result.path.name,
        )
        log.debug(
            "  id=%s: queued+rendered %.1f ms, written %.1f ms (%s)",
            task.request_id,
            1e3 * (hit.ready - task.submitted),
            1e3 * result.seconds,
            task.origin.transport,
        )
        message = protocol.done(
            task.request_id,
            str(result.path),
            task.drum_class,
            int(task.seed or 0),
            result.frames,
            hit.sample_rate,
        )
        self.reply(task.origin, message)
        if task.stream and task.origin.address is not None:
            for chunk in protocol.chunks(task.request_id, result.path.read_bytes()):
                self.reply(task.origin, chunk)

    def _on_fail(self, task: Task, err: DrumDiffError) -> None:
        code = getattr(err, "code", "internal")
        ms = 1e3 * (time.perf_counter() - task.submitted)
        log.warning(
            "render id=%s %s failed after %.1f ms: %s %s",
            task.request_id,
            task.drum_class,
            ms,
            code,
            err,
        )
        self.reply(task.origin, protocol.fail(task.request_id, code, str(err)))

    def _answer_error(
        self,
        sender: Address,
        request_id: RequestId,
        err: ServerError,
        reply_port: int | None = None,
    ) -> None:
        """A message from `sender` could not be handled: one log line and a `fail`."""
        log.info("%s:%d -> fail %s %s: %s", sender[0], sender[1], request_id, err.code, err)
        self.reply(Origin("osc", sender, reply_port), protocol.fail(request_id, err.code, str(err)))

    # ---- replies ---------------------------------------------------------------------------

    def reply(self, origin: Origin, message: Message) -> None:
        if origin.address is None:  # MIDI (or local) requests: tell every registered client
            self._broadcast(message)
            return
        self._send(self.reply_address(origin), message)

    def reply_address(self, origin: Origin) -> Address:
        """Where replies to an OSC request go (see `Clients.reply_address`)."""
        assert origin.address is not None
        return self.clients.reply_address(origin.address, origin.reply_port)

    def _broadcast(self, message: Message) -> None:
        for dest in self.clients.everyone():
            self._send(dest, message)

    def _send(self, dest: Address, message: Message) -> None:
        if self._transport is not None:
            self._transport.send(dest, message)
