"""`/drumdiff/kit`: a whole kit for samplers, rendered on a thread of its own.

A kit is a few hundred renders (minutes on a CPU), so it cannot take the engine's worker: single
hits keep being served meanwhile and share the CPU with it. One kit at a time; the loaded model
is the one in force when the request arrived.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from drumdiff.model.core.checkpoint import LoadedModel
from drumdiff.model.errors import DrumDiffError
from drumdiff.model.render.generate import settings_for
from drumdiff.model.render.kit import KitPlan, plan_kit, render_kit, write_kit
from drumdiff.server import protocol
from drumdiff.server.engine import Engine
from drumdiff.server.errors import BusyError, ProtocolError, RenderError, ServerError
from drumdiff.server.protocol import KitRequest, Message, RequestId

log = logging.getLogger("drumdiff.kits")

#: The folder under the watched folder that kits are written into.
KITS_FOLDER = "kits"


class KitCancelled(Exception):
    """The daemon is stopping: the kit in progress is abandoned (its folder stays incomplete)."""


class KitService:
    def __init__(self, engine: Engine, folder: Path) -> None:
        self.engine = engine
        self.folder = folder / KITS_FOLDER
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._next_id = 1

    def submit(self, request: KitRequest, reply: Callable[[Message], None]) -> RequestId:
        """Start rendering the kit; `reply` sends each progress message and the final answer."""
        model = self.engine.model
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                raise BusyError(
                    "a kit is rendering; ask again when its kit.done has arrived",
                    request_id=request.request_id,
                )
            rid: RequestId = (
                request.request_id if request.request_id is not None else f"kit{self._next_id}"
            )
            self._next_id += 1
            seed = request.seed if request.seed is not None else self.engine.draw_seed()
            try:
                settings = settings_for(
                    model, steps=request.steps or self.engine.defaults.sampling.steps
                )
                plan = plan_kit(
                    model,
                    name=request.name,
                    round_robin=request.round_robin,
                    velocity_layers_count=request.velocity_layers,
                    length_cymbals_s=request.length_cymbals,
                    seed=seed,
                    settings=settings,
                    formats=request.formats,
                    model_source={
                        "checkpoint": str(model.path) if model.path else None,
                        "step": model.step,
                    },
                )
            except (DrumDiffError, ValueError) as err:
                raise ProtocolError(str(err), request_id=rid) from None
            out = self.folder / f"{plan.name}-{time.strftime('%Y%m%d-%H%M%S')}-{seed}"
            self._thread = threading.Thread(
                target=self._run,
                args=(model, plan, out, rid, seed, reply),
                name="drumdiff-kit",
                daemon=True,
            )
            self._thread.start()
        return rid

    def _run(
        self,
        model: LoadedModel,
        plan: KitPlan,
        out: Path,
        rid: RequestId,
        seed: int,
        reply: Callable[[Message], None],
    ) -> None:
        started = time.perf_counter()

        def progress(done: int, total: int, what: str) -> None:
            if self._cancel.is_set():
                raise KitCancelled
            reply(protocol.kit_progress(rid, done, total))

        try:
            if out.exists():
                raise RenderError(f"kit folder {out} exists already", request_id=rid)
            kit = render_kit(model, plan, progress=progress)
            write_kit(kit, out, sample_rate=model.sample_rate)
        except KitCancelled:
            log.info("kit %s abandoned: the daemon is stopping", rid)
            return
        except ServerError as err:
            reply(protocol.fail(rid, err.code, str(err)))
            return
        except (DrumDiffError, ValueError, OSError) as err:
            log.warning("kit %s failed: %s", rid, err)
            reply(protocol.fail(rid, RenderError.code, f"kit failed: {err}"))
            return
        samples = len(kit.audio)
        log.info(
            "kit %s: %d pads, %d samples in %.1f s into %s",
            rid,
            len(kit.plan.pads),
            samples,
            time.perf_counter() - started,
            out,
        )
        reply(protocol.kit_done(rid, str(out.resolve()), len(kit.plan.pads), samples, seed))

    def stop(self, timeout: float = 5.0) -> None:
        self._cancel.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
