"""Sound design in the daemon: vary, interpolate, inpaint, morph and scrub requests.

The transport thread resolves a `DesignRequest` into one engine `Task` per hit: it looks up the
referenced earlier hits in a short history (by request id, or `last` of a class), picks the
checkpoint for `step` / `fraction`, draws seeds, and enqueues. The worker thread runs the
renderers registered here, which call `model.render.sound_design`; checkpoints other than the loaded
one come from a small LRU cache, so switching between a few is quick after the first load.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from drumdiff.model.core.checkpoint import LoadedModel
from drumdiff.model.errors import DrumDiffError
from drumdiff.model.render.design_defaults import DESIGN_DEFAULTS
from drumdiff.model.render.generate import RenderSettings, render, settings_with
from drumdiff.model.render.sound_design import (
    ClassRef,
    ModelCache,
    class_weight_vector,
    inpaint,
    interpolate,
    list_checkpoints,
    morph,
    pick_checkpoint,
    variation,
)
from drumdiff.server.engine import UNCONDITIONAL, Engine, Hit, Origin, Task
from drumdiff.server.errors import BusyError, ProtocolError
from drumdiff.server.protocol import LAST, DesignRequest, RequestId

#: Earlier hits kept for `vary`, `interpolate` and `inpaint` to refer to.
HISTORY_SIZE = 128
#: Checkpoints (besides the loaded model) kept resident for `step` / `fraction`.
CACHE_SIZE = 3


@dataclass(frozen=True)
class PastHit:
    request_id: RequestId
    drum_class: str  # label: a class name, UNCONDITIONAL, or a morph's "a+b"
    class_arg: str | None  # the condition it was rendered with, when it was one class
    audio: np.ndarray  # (C, T) float32, before gain


class HitHistory:
    """The last few hits by request id (a request with `count` > 1 keeps its newest)."""

    def __init__(self, size: int = HISTORY_SIZE) -> None:
        self.size = size
        self._hits: OrderedDict[RequestId, PastHit] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, hit: PastHit) -> None:
        with self._lock:
            self._hits.pop(hit.request_id, None)
            self._hits[hit.request_id] = hit
            while len(self._hits) > self.size:
                self._hits.popitem(last=False)

    def find(self, ref: RequestId, drum_class: str | None = None) -> PastHit:
        with self._lock:
            if ref == LAST:
                for past in reversed(self._hits.values()):
                    if drum_class is None or past.drum_class == drum_class:
                        return past
                which = f"of class {drum_class!r} " if drum_class else ""
                raise ProtocolError(f"no earlier hit {which}to refer to yet")
            hit = self._hits.get(ref)
        if hit is None:
            raise ProtocolError(f"no hit with id {ref!r} among the last {self.size} hits")
        return hit


class DesignService:
    """Turns sound-design requests into engine tasks and renders them on the worker."""

    def __init__(
        self, engine: Engine, *, cache_size: int = CACHE_SIZE, history: int = HISTORY_SIZE
    ) -> None:
        self.engine = engine
        self.history = HitHistory(history)
        self.cache = ModelCache(cache_size, device=engine.device)
        renderers: dict[str, Callable[[LoadedModel, Sequence[Task]], np.ndarray]] = {
            "vary": self._render_vary,
            "interpolate": self._render_interpolate,
            "inpaint": self._render_inpaint,
            "morph": self._render_morph,
            "scrub": self._render_scrub,
        }
        for kind, fn in renderers.items():
            engine.add_renderer(kind, fn)

    # ---- transport threads -------------------------------------------------------------------

    def record(self, hit: Hit) -> None:
        """Remember a delivered hit so later requests can refer to it."""
        task = hit.task
        self.history.add(PastHit(task.request_id, task.drum_class, task.class_arg, hit.audio))

    def submit(
        self, request: DesignRequest, origin: Origin, submitted: float | None = None
    ) -> list[Task]:
        """Resolve and enqueue one task per hit; raises ProtocolError / BusyError / ShuttingDown."""
        rid = self.engine.next_id() if request.request_id is None else request.request_id
        # A request refused on arrival is answered under the client's id, or -1 as a refused
        # render is: the daemon's id only names requests that were accepted.
        refused_id = request.request_id
        try:
            tasks = self._tasks(
                request, rid, origin, time.perf_counter() if submitted is None else submitted
            )
        except ProtocolError as err:
            err.request_id = refused_id
            raise
        except DrumDiffError as err:  # e.g. a run folder without checkpoints
            raise ProtocolError(str(err), request_id=refused_id) from None
        free = self.engine.config.queue_size - self.engine.queue_length
        if len(tasks) > free:
            raise BusyError(
                f"{len(tasks)} hits asked, room for {max(free, 0)}", request_id=refused_id
            )
        for task in tasks:
            self.engine.enqueue(task)
        return tasks

    def _class(self, name: str | None, model: LoadedModel) -> str | None:
        if name is None or name == UNCONDITIONAL:
            return None
        if name not in model.classes:
            raise ProtocolError(f"unknown class {name!r}; expected one of {list(model.classes)}")
        return name

    def _checkpoint(self, request: DesignRequest) -> Path | None:
        if request.checkpoint_step is None and request.checkpoint_fraction is None:
            return None
        path = self.engine.model.path
        if path is None:
            raise ProtocolError(
                "the loaded model is not from a run folder, so there is nothing to scrub"
            )
        entries = list_checkpoints(path.parent)
        entry = pick_checkpoint(
            entries, step=request.checkpoint_step, fraction=request.checkpoint_fraction
        )
        return entry.path

    def _settings(self, request: DesignRequest) -> RenderSettings:
        return settings_with(
            self.engine.model,
            self.engine.defaults.sampling,
            steps=request.steps,
            sampler=request.sampler,
            guidance=request.guidance,
        )

    def _seeds(self, request: DesignRequest, count: int) -> list[int]:
        if request.seed is not None:
            return [request.seed + i for i in range(count)]
        return [self.engine.draw_seed() for _ in range(count)]

    def _tasks(
        self, request: DesignRequest, rid: RequestId, origin: Origin, submitted: float
    ) -> list[Task]:
        model = self.engine.model
        checkpoint = self._checkpoint(request)
        info: dict[str, Any] = {"op": request.kind}
        if checkpoint is not None:
            info["checkpoint"] = checkpoint.name
        label_class = self._class(request.drum_class, model) if request.drum_class else None
        kind = request.kind
        sources = [
            self.history.find(ref, label_class if ref == LAST else None) for ref in request.sources
        ]
        info["sources"] = [s.request_id for s in sources]

        def task(
            label: str,
            class_arg: str | None,
            seed: int,
            settings: RenderSettings,
            extra: dict[str, Any],
        ) -> Task:
            return Task(
                kind=kind,
                request_id=rid,
                origin=origin,
                drum_class=label,
                class_arg=class_arg,
                note=None,
                velocity=127,
                seed=seed,
                settings=settings,
                gain_db=self.engine.defaults.gain,
                stream=request.stream,
                fresh=True,
                submitted=submitted,
                extra={"checkpoint": checkpoint, "info": info, **extra},
            )

        if kind == "interpolate":
            count = request.count or DESIGN_DEFAULTS.interpolate_count
            steps = request.steps or DESIGN_DEFAULTS.interpolate_steps
            guidance = (
                DESIGN_DEFAULTS.interpolate_guidance
                if request.guidance is None
                else request.guidance
            )
            refine = DESIGN_DEFAULTS.refine if request.refine is None else request.refine
            settings = RenderSettings(
                steps=steps,
                sampler="ddim",
                schedule=self.engine.defaults.sampling.schedule,
                guidance=guidance,
            )
            a, b = sources
            info.update(refine=refine, count=count)
            fractions = np.linspace(0.0, 1.0, count)
            # The index stands in for the seed: interpolation is deterministic.
            return [
                task(
                    a.drum_class if w < 0.5 else b.drum_class,
                    None,
                    i,
                    settings,
                    {
                        "a": a,
                        "b": b,
                        "fraction": float(w),
                        "refine": refine,
                        "info": {**info, "fraction": float(w)},
                    },
                )
                for i, w in enumerate(fractions)
            ]
        count = request.count or 1
        seeds = self._seeds(request, count)
        settings = self._settings(request)
        if kind in ("vary", "inpaint"):
            (source,) = sources
            class_arg = label_class if request.drum_class else source.class_arg
            label = class_arg or UNCONDITIONAL
            extra: dict[str, Any] = {"source": source}
            if kind == "vary":
                level = DESIGN_DEFAULTS.level if request.level is None else request.level
                extra["level"] = level
                info["level"] = level
            else:
                sr = model.sample_rate
                frames = source.audio.shape[-1]
                start = 0 if request.start_s is None else int(round(request.start_s * sr))
                end = (
                    frames if request.end_s is None else min(frames, int(round(request.end_s * sr)))
                )
                if not 0 <= start < end:
                    raise ProtocolError(
                        f"inpaint range {start / sr:.3f}..{end / sr:.3f} s is empty within the "
                        f"{frames / sr:.3f} s hit"
                    )
                seam = int(
                    round(
                        (DESIGN_DEFAULTS.seam_ms if request.seam_ms is None else request.seam_ms)
                        * 1e-3
                        * sr
                    )
                )
                extra.update(start=start, end=end, seam=seam)
                info.update(start=start, end=end, seam=seam)
            return [task(label, class_arg, seed, settings, extra) for seed in seeds]
        if kind == "morph":
            first, second = (self._class(c, model) for c in request.classes)
            mix = float(request.mix if request.mix is not None else 0.5)
            weights: dict[ClassRef, float] = {}
            weights[first] = weights.get(first, 0.0) + 1.0 - mix
            weights[second] = weights.get(second, 0.0) + mix
            class_weight_vector(model, weights)  # validates now, on the transport thread
            label = f"{first or UNCONDITIONAL}+{second or UNCONDITIONAL}"
            info["mix"] = {str(k or UNCONDITIONAL): v for k, v in weights.items()}
            return [task(label, None, seed, settings, {"weights": weights}) for seed in seeds]
        if kind == "scrub":
            if checkpoint is None:
                raise ProtocolError("scrub needs step or fraction")
            class_arg = self._class(request.classes[0], model)
            return [
                task(class_arg or UNCONDITIONAL, class_arg, seed, settings, {}) for seed in seeds
            ]
        raise ProtocolError(f"unknown sound-design request {kind!r}")

    # ---- worker thread -------------------------------------------------------------------------

    def _model(self, default: LoadedModel, task: Task) -> LoadedModel:
        path = task.extra.get("checkpoint")
        return default if path is None else self.cache.get(path)

    def _grouped(
        self,
        model: LoadedModel,
        tasks: Sequence[Task],
        key: Callable[[Task], Any],
        run: Callable[[LoadedModel, list[Task]], np.ndarray],
    ) -> np.ndarray:
        """Render tasks that share a key as one batch; results come back in task order."""
        groups: dict[Any, list[int]] = {}
        for i, t in enumerate(tasks):
            groups.setdefault((t.extra.get("checkpoint"), key(t)), []).append(i)
        out: list[np.ndarray | None] = [None] * len(tasks)
        for indices in groups.values():
            group = [tasks[i] for i in indices]
            audio = run(self._model(model, group[0]), group)
            for i, hit in zip(indices, audio):
                out[i] = hit
        return np.stack(out)  # type: ignore[arg-type]

    def _render_vary(self, model: LoadedModel, tasks: Sequence[Task]) -> np.ndarray:
        def run(m: LoadedModel, group: list[Task]) -> np.ndarray:
            t = group[0]
            return variation(
                m,
                t.extra["source"].audio,
                t.extra["level"],
                [int(g.seed or 0) for g in group],
                t.settings,
                drum_class=t.class_arg,
            )

        return self._grouped(
            model, tasks, lambda t: (id(t.extra["source"]), t.extra["level"], t.class_arg), run
        )

    def _render_inpaint(self, model: LoadedModel, tasks: Sequence[Task]) -> np.ndarray:
        def run(m: LoadedModel, group: list[Task]) -> np.ndarray:
            t = group[0]
            return inpaint(
                m,
                t.extra["source"].audio,
                [int(g.seed or 0) for g in group],
                t.settings,
                regenerate=(t.extra["start"], t.extra["end"]),
                drum_class=t.class_arg,
                seam=t.extra["seam"],
            )

        def key(t: Task) -> tuple[object, ...]:
            return (
                id(t.extra["source"]),
                t.extra["start"],
                t.extra["end"],
                t.extra["seam"],
                t.class_arg,
            )

        return self._grouped(model, tasks, key, run)

    def _render_interpolate(self, model: LoadedModel, tasks: Sequence[Task]) -> np.ndarray:
        def run(m: LoadedModel, group: list[Task]) -> np.ndarray:
            t = group[0]
            a, b = t.extra["a"], t.extra["b"]
            return interpolate(
                m,
                a.audio,
                b.audio,
                len(group),
                t.settings.steps,
                class_a=a.class_arg,
                class_b=b.class_arg,
                guidance=t.settings.guidance,
                schedule=t.settings.schedule,
                refine=t.extra["refine"],
                fractions=[g.extra["fraction"] for g in group],
            )

        return self._grouped(
            model, tasks, lambda t: (id(t.extra["a"]), id(t.extra["b"]), t.extra["refine"]), run
        )

    def _render_morph(self, model: LoadedModel, tasks: Sequence[Task]) -> np.ndarray:
        def run(m: LoadedModel, group: list[Task]) -> np.ndarray:
            return morph(
                m, group[0].extra["weights"], [int(g.seed or 0) for g in group], group[0].settings
            )

        return self._grouped(
            model, tasks, lambda t: tuple(sorted(t.extra["weights"].items(), key=str)), run
        )

    def _render_scrub(self, model: LoadedModel, tasks: Sequence[Task]) -> np.ndarray:
        def run(m: LoadedModel, group: list[Task]) -> np.ndarray:
            return render(
                m,
                [int(g.seed or 0) for g in group],
                group[0].settings,
                classes=[g.class_arg for g in group],
            )

        return self._grouped(model, tasks, lambda t: None, run)
