"""The engine: owns the model, one inference worker thread, a bounded queue, batching, a pool.

Threads: transports call `submit` / `set_param` / `request_load` (they validate and enqueue, or
hand out a pooled hit, never infer); the single worker thread owns every use of the model.
Results leave through the `on_hit` / `on_fail` callbacks, which the daemon points at the audio
output and the WAV writer.

- Requests that wait in the queue together are rendered as one batch per batch key (kind and
  sampling settings); `model.render.generate.render` makes a batch equal the same renders one
  by one.
- A pool of pre-rendered hits per class (engine.pool_size) answers a trigger without any
  inference; the worker refills it in small rounds whenever the queue is empty.
- A full queue raises `BusyError` instead of growing: a late drum hit is worse than none.

Extending (variations, interpolation, inpainting, morphing): a request kind becomes a
`Task` with its own `kind` and `extra` data, and a renderer `(model, tasks) -> (B, C, T)` in
`RENDERERS` (or the `renderers` argument). Batching, queueing, delivery and replies are shared.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from drumdiff.model.core.checkpoint import LoadedModel, load_checkpoint
from drumdiff.model.core.runtime import RuntimeChoice, use_runtime
from drumdiff.model.errors import DrumDiffError
from drumdiff.model.labels import class_note, playable_class
from drumdiff.model.render.generate import (
    RenderSettings,
    render,
    sampling_plan,
    settings_for,
    settings_with,
    valid_length,
)
from drumdiff.server.config import EngineConfig
from drumdiff.server.errors import BusyError, LoadError, ProtocolError, RenderError, ShuttingDown
from drumdiff.server.pool import HitPool, Pooled
from drumdiff.server.protocol import DRAWN_SEED_LIMIT, PARAMS, RenderRequest, RequestId

log = logging.getLogger("drumdiff.server.engine")

UNCONDITIONAL = "any"  # the class label of a render without class conditioning


@dataclass(frozen=True)
class Origin:
    """Where a request came from, so its replies can find their way back."""

    transport: str  # "osc", "midi" or "local"
    address: tuple[str, int] | None = None  # OSC sender (host, port)
    reply_port: int | None = (
        None  # the request's `reply_port`: replies go to this port of the sender's host
    )


@dataclass(frozen=True)
class Defaults:
    """Render defaults that `/drumdiff/set` and MIDI CCs change."""

    sampling: RenderSettings  # the model's own until a `set` changes them
    gain: float  # dB
    variation: float  # 0..1: chance that a pooled trigger gets a new hit

    def changed(self, model: LoadedModel, name: str, value: Any) -> Defaults:
        """These defaults with one parameter set (a sampling setting resolved by settings_with)."""
        if name in ("gain", "variation"):
            return replace(self, **{name: value})
        return replace(self, sampling=settings_with(model, self.sampling, **{name: value}))


@dataclass(frozen=True)
class Task:
    """A resolved request: everything the worker needs; nothing from the wire is left to check."""

    kind: str  # key into the renderers ("render"; sound design adds more)
    request_id: RequestId
    origin: Origin
    drum_class: str  # label: a class name or UNCONDITIONAL
    class_arg: str | None  # what render() gets (None = unconditional)
    note: int | None  # MIDI root note for the file's smpl chunk
    velocity: int
    seed: int | None  # None only until the engine draws one
    settings: RenderSettings
    gain_db: float
    stream: bool = False
    fresh: bool = False
    submitted: float = 0.0  # time.perf_counter() when the transport handed it over
    pitch: float = 0.0  # semitones, applied by resampling when the hit is delivered
    poolable: bool = False  # a pooled hit may still answer it when the worker reaches it
    extra: Mapping[str, Any] = field(default_factory=dict)  # kind-specific data

    @property
    def batch_key(self) -> tuple[Any, ...]:
        return (self.kind, self.settings)


@dataclass(frozen=True)
class Hit:
    """A rendered (or pooled) hit on its way to the outputs."""

    task: Task  # with the seed actually used
    audio: np.ndarray  # (C, T) float32, before gain
    source: str  # "fresh", "pool" or "repeat"
    batch_size: int
    ready: float  # time.perf_counter() when the audio existed for this request
    model_name: str
    sample_rate: int


@dataclass(frozen=True)
class _Control:
    """Work for the worker thread that is not a render (e.g. swapping the model)."""

    run: Callable[[], None]
    name: str
    request_id: RequestId


Renderer = Callable[[LoadedModel, Sequence[Task]], np.ndarray]


def render_tasks(model: LoadedModel, tasks: Sequence[Task]) -> np.ndarray:
    """The plain class-conditional render of a batch of tasks that share their settings."""
    return render(
        model,
        [int(t.seed) for t in tasks],  # type: ignore[arg-type]
        tasks[0].settings,
        classes=[t.class_arg for t in tasks],
    )


RENDERERS: dict[str, Renderer] = {"render": render_tasks}


def model_name(model: LoadedModel) -> str:
    if model.path is not None:
        return model.path.name
    return f"random:{model.config.name}"


def velocity_gain(velocity: int, exponent: float) -> float:
    """Amplitude factor of a MIDI velocity: (v / 127) ** exponent."""
    return (max(0, min(velocity, 127)) / 127.0) ** exponent


class Engine:
    """One inference worker, a bounded queue, batching and a pool of pre-rendered hits."""

    def __init__(
        self,
        model: LoadedModel,
        config: EngineConfig,
        *,
        note_map: Mapping[int, str],
        on_hit: Callable[[Hit], None],
        on_fail: Callable[[Task, DrumDiffError], None],
        renderers: Mapping[str, Renderer] | None = None,
        seed: int | None = None,
    ) -> None:
        self.config = config
        self.runtime: RuntimeChoice = RuntimeChoice("torch", "asked for")
        self._model = self._on_runtime(model)
        self._note_map = dict(note_map)
        self._on_hit = on_hit
        self._on_fail = on_fail
        self._renderers = dict(RENDERERS if renderers is None else renderers)
        self.seed = (
            int(cast(int, np.random.SeedSequence().entropy) % 2**31) if seed is None else int(seed)
        )
        self._rng = np.random.default_rng(self.seed)
        self._rng_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._queue: queue.Queue[Task | _Control] = queue.Queue(maxsize=config.queue_size)
        self._pool = HitPool(config.pool_size)
        self._defaults = self._defaults_for(model)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started = time.monotonic()
        self.served = 0
        self.busy_rejections = 0
        self.pool_warm_after: float | None = None  # seconds from start until the pool first filled
        self.batches: deque[int] = deque(maxlen=256)  # sizes of recent request batches
        self._served_lock = threading.Lock()

    def _on_runtime(self, model: LoadedModel) -> LoadedModel:
        """`model` on the configured runtime where that is safe (model/core/runtime.py), else
        torch."""
        wanted = self.config.runtime
        if wanted == "auto":
            wanted = "openvino" if importlib.util.find_spec("openvino") is not None else "torch"
        if wanted == "torch":
            self.runtime = RuntimeChoice("torch", f"engine.runtime is {self.config.runtime}")
            return model
        swapped, self.runtime = use_runtime(model, wanted)
        level = logging.INFO if self.runtime.runtime == wanted else logging.WARNING
        log.log(level, "runtime: %s (%s)", self.runtime.runtime, self.runtime.reason)
        return swapped

    # ---- state ---------------------------------------------------------------------------

    @property
    def model(self) -> LoadedModel:
        return self._model

    @property
    def defaults(self) -> Defaults:
        return self._defaults

    @property
    def device(self) -> torch.device:
        return next(self._model.denoiser.parameters()).device

    @property
    def queue_length(self) -> int:
        return self._queue.qsize()

    def pool_counts(self) -> dict[str, int]:
        return self._pool.counts()

    def pool_fill(self) -> float:
        """Ready pooled hits over the pool's capacity, 0..1 (1 when there is no pool)."""
        return self._pool.fill(self._model.classes)

    def _defaults_for(self, model: LoadedModel) -> Defaults:
        return Defaults(sampling=settings_for(model), gain=self.config.gain_db, variation=1.0)

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("engine already started")
        if self.config.warmup:
            started = time.perf_counter()
            with self._precision():
                render(self._model, [0], self._defaults.sampling, classes=[self._model.classes[0]])
            log.info("warm-up render took %.0f ms", 1e3 * (time.perf_counter() - started))
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._work, name="drumdiff-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch in progress; answer queued requests with `shutting_down`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("worker did not finish within %.0f s", timeout)
        self._drain_failed()

    def _drain_failed(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, Task):
                self._fail(item, ShuttingDown("the daemon is stopping", request_id=item.request_id))

    # ---- requests (transport threads) -----------------------------------------------------

    def next_id(self) -> int:
        return next(self._ids)

    def resolve(
        self, request: RenderRequest, origin: Origin, submitted: float | None = None
    ) -> Task:
        """Check a render request against the loaded model and fill in the defaults."""
        model = self._model
        d = self._defaults
        if isinstance(request.target, int):
            note: int | None = request.target
            wanted = self._note_map.get(request.target, "percussion")
            class_arg = playable_class(wanted, model.classes)
        else:
            if request.target not in model.classes:
                raise ProtocolError(
                    f"unknown class {request.target!r}; expected one of {list(model.classes)}",
                    request_id=request.request_id,
                )
            class_arg = request.target
            note = class_note(request.target, self._note_map)
        length = None
        if request.length_s is not None:
            length = max(1, round(request.length_s * model.sample_rate))
            try:
                valid_length(model, length)
            except ValueError as err:
                raise ProtocolError(str(err), request_id=request.request_id) from None
        settings = settings_with(
            model,
            d.sampling,
            steps=request.steps,
            sampler=request.sampler,
            guidance=request.guidance,
            length=length,
        )
        return Task(
            kind=request.kind,
            request_id=self.next_id() if request.request_id is None else request.request_id,
            origin=origin,
            drum_class=class_arg or UNCONDITIONAL,
            class_arg=class_arg,
            note=note,
            velocity=request.velocity,
            seed=request.seed,
            settings=settings,
            gain_db=d.gain if request.gain_db is None else request.gain_db,
            stream=request.stream,
            fresh=request.fresh,
            submitted=time.perf_counter() if submitted is None else submitted,
            pitch=request.pitch or 0.0,
        )

    def submit(
        self, request: RenderRequest, origin: Origin, submitted: float | None = None
    ) -> Task | None:
        """Serve from the pool at once, or enqueue for the worker. None for a release.

        Raises ProtocolError (bad request), BusyError (queue full), ShuttingDown.
        """
        if request.is_release:
            return None
        if self._stop.is_set():
            raise ShuttingDown("the daemon is stopping", request_id=request.request_id)
        task = self.resolve(request, origin, submitted)
        poolable = (
            not request.fresh
            and request.seed is None
            and request.steps is None
            and request.sampler is None
            and request.guidance is None
            and request.length_s
            is None  # pooled hits have the model's length; pitch applies to any
            and task.class_arg is not None
        )
        if poolable:
            hit = self._take_ready(task)
            if hit is not None:
                self._deliver(hit)
                return hit.task
        if task.seed is None:
            task = replace(task, seed=self.draw_seed())
        task = replace(task, poolable=poolable)
        self.enqueue(task)
        return task

    def enqueue(self, task: Task) -> None:
        """Queue a resolved task for the worker (other request kinds enter here)."""
        if task.kind not in self._renderers:
            raise ProtocolError(
                f"no renderer for request kind {task.kind!r}", request_id=task.request_id
            )
        try:
            self._queue.put_nowait(task)
        except queue.Full:
            self.busy_rejections += 1
            raise BusyError("queue full", request_id=task.request_id) from None

    def add_renderer(self, kind: str, renderer: Renderer) -> None:
        """Teach the worker a request kind (sound design); call before `start`."""
        self._renderers[kind] = renderer

    def request_load(
        self, path: Path, reply: Callable[[LoadedModel | DrumDiffError], None]
    ) -> None:
        """Load a checkpoint on the worker thread; `reply` gets the new model or the error.

        The path must already be checked against the configured folders (the daemon does).
        """
        if self._stop.is_set():
            raise ShuttingDown("the daemon is stopping")

        def run() -> None:
            try:
                new = self._on_runtime(load_checkpoint(path, device=self.device))
            except DrumDiffError as err:
                reply(LoadError(str(err), code="bad_checkpoint"))
                return
            except Exception as err:  # a torch error we did not foresee: keep serving
                log.exception("loading %s failed", path)
                reply(LoadError(f"{path}: {type(err).__name__}: {err}", code="bad_checkpoint"))
                return
            self._swap(new)
            reply(new)

        try:
            self._queue.put_nowait(_Control(run, "load", "load"))
        except queue.Full:
            raise BusyError("queue full") from None

    def set_param(self, name: str, value: Any) -> int | float | str:
        """Change a render default; returns the value in force. Stale pooled hits are dropped."""
        spec = PARAMS.get(name)
        if spec is None:
            raise ProtocolError(f"unknown param {name!r}; expected one of {sorted(PARAMS)}")
        value = spec.parse(value)
        # settings_with resolves it: one guidance for every class, a step count alone on a
        # distilled default asks for the full model; what cannot run is refused here, not at
        # every hit.
        defaults = self._defaults.changed(self._model, name, value)
        try:
            sampling_plan(self._model, defaults.sampling)
        except ValueError as err:
            raise ProtocolError(str(err)) from None
        self._defaults = defaults
        self._purge_stale()
        return value

    # ---- pool ------------------------------------------------------------------------------

    def _take_ready(self, task: Task) -> Hit | None:
        """A repeat of the class's last hit (per `variation`) or a pooled hit, if one fits."""
        variation = self._defaults.variation
        last = self._pool.last(task.drum_class)
        if last is not None and variation < 1.0 and last.settings == task.settings:
            with self._rng_lock:
                repeat = self._rng.random() >= variation
            if repeat:
                return self._hit_from(task, last, "repeat")
        entry = self._pool.take(task.drum_class, task.settings)
        return None if entry is None else self._hit_from(task, entry, "pool")

    def _hit_from(self, task: Task, entry: Pooled, source: str) -> Hit:
        return Hit(
            task=replace(task, seed=entry.seed),
            audio=entry.audio,
            source=source,
            batch_size=1,
            ready=time.perf_counter(),
            model_name=model_name(self._model),
            sample_rate=self._model.sample_rate,
        )

    def _purge_stale(self) -> None:
        self._pool.keep_only(self._defaults.sampling)

    def _refill(self, names: list[str]) -> None:
        model = self._model
        settings = self._defaults.sampling
        seeds = [self.draw_seed() for _ in names]
        with self._precision():
            audio = render(model, seeds, settings, classes=names)
        if model is not self._model:
            return  # swapped meanwhile (cannot happen on this thread today; cheap to keep)
        self._pool.add(
            [(name, Pooled(seed, settings, hit)) for name, seed, hit in zip(names, seeds, audio)]
        )
        self._purge_stale()  # defaults may have changed during the render
        if self.pool_warm_after is None and self.pool_fill() >= 1.0:
            # Until now a pooled trigger may have waited for a render; say when that ends.
            self.pool_warm_after = time.monotonic() - self.started
            log.info(
                "pool warm: %d hits per class ready, %.1f s after start; triggers are answered at "
                "once",
                self.config.pool_size,
                self.pool_warm_after,
            )

    # ---- worker ----------------------------------------------------------------------------

    def _work(self) -> None:
        torch.set_grad_enabled(False)
        while not self._stop.is_set():
            wanted = self._pool.refill_plan(self._model.classes, self.config.refill_batch)
            try:
                first = self._queue.get(timeout=0.005 if wanted else 0.1)
            except queue.Empty:
                if wanted and not self._stop.is_set():
                    try:
                        self._refill(wanted)
                    except Exception:
                        log.exception("pool refill failed; retrying in 1 s")
                        self._stop.wait(1.0)
                continue
            items: list[Task | _Control] = [first]
            while len(items) < self.config.max_batch:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._process(items)

    def _process(self, items: list[Task | _Control]) -> None:
        """Controls run in arrival order; the tasks between them render grouped by batch key."""
        pending: list[Task] = []
        for item in items:
            if isinstance(item, _Control):
                self._render_groups(pending)
                pending = []
                item.run()
            else:
                pending.append(item)
        self._render_groups(pending)

    def _render_groups(self, tasks: list[Task]) -> None:
        groups: dict[tuple[Any, ...], list[Task]] = {}
        for task in tasks:
            if task.poolable:
                # While the pool fills (start, `set`, `load`), a trigger that found it empty
                # waited for the refill round in progress; that round may have made its hit.
                hit = self._take_ready(task)
                if hit is not None:
                    self._deliver(hit)
                    continue
            groups.setdefault(task.batch_key, []).append(task)
        for group in groups.values():
            self._render_group(group)

    def _render_group(self, group: list[Task]) -> None:
        model = self._model
        try:
            with self._precision():
                audio = self._renderers[group[0].kind](model, group)
        except Exception as err:
            log.exception("render of %d request(s) failed", len(group))
            for task in group:
                self._fail(
                    task, RenderError(f"{type(err).__name__}: {err}", request_id=task.request_id)
                )
            return
        ready = time.perf_counter()
        self.batches.append(len(group))
        name = model_name(model)
        for task, hit in zip(group, audio):
            self._deliver(Hit(task, hit, "fresh", len(group), ready, name, model.sample_rate))

    def _deliver(self, hit: Hit) -> None:
        self._pool.remember(
            hit.task.drum_class, Pooled(int(hit.task.seed or 0), hit.task.settings, hit.audio)
        )
        with self._served_lock:
            self.served += 1
        try:
            self._on_hit(hit)
        except Exception as err:
            log.exception("delivering request %s failed", hit.task.request_id)
            self._fail(
                hit.task,
                RenderError(f"{type(err).__name__}: {err}", request_id=hit.task.request_id),
            )

    def _fail(self, task: Task, err: DrumDiffError) -> None:
        try:
            self._on_fail(task, err)
        except Exception:
            log.exception("reporting the failure of request %s failed", task.request_id)

    def _swap(self, new: LoadedModel) -> None:
        """Worker thread only: replace the model, reset pool and defaults to the new model's."""
        self._model = new
        old = self._defaults
        self._defaults = replace(self._defaults_for(new), gain=old.gain, variation=old.variation)
        self._pool.clear()

    # ---- helpers ---------------------------------------------------------------------------

    def draw_seed(self) -> int:
        """A seed from the engine's seeded stream (below 2^24, so Pd's floats hold it exactly)."""
        with self._rng_lock:
            return int(self._rng.integers(0, DRAWN_SEED_LIMIT))

    @contextlib.contextmanager
    def _precision(self) -> Iterator[None]:
        device = self.device
        precision = self.config.precision
        if device.type != "cuda" or precision == "fp32":
            yield
            return
        if precision == "auto":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        with torch.autocast("cuda", dtype=dtype):
            yield
