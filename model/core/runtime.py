"""Where the network runs: torch (the reference), or its graph exported to ONNX and run by
OpenVINO or ONNX Runtime (optional packages: `pip install drumdiff[openvino]`).

An exported network stands in for `DrumUNet1d` inside the same `Denoiser`, so samplers,
guidance and finishing are untouched. It is adopted only after it matches torch on a probe batch
(max |difference| within `TOLERANCE`); a missing package, a failed export or a mismatch falls
back to torch with the reason, never to a wrong sound.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from drumdiff.model.core.checkpoint import DistilledModel, LoadedModel
from drumdiff.model.core.denoiser import Denoiser
from drumdiff.model.core.unet import DrumUNet1d

log = logging.getLogger(__name__)

RUNTIMES = ("torch", "openvino", "onnxruntime")
#: Largest |difference| from torch's output (v, model space, on a probe batch) to adopt a runtime.
TOLERANCE = 1e-3

Graph = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


class RuntimeUnavailable(RuntimeError):
    """A runtime cannot be used here (package missing, export failed, outputs differ)."""


class _ByWeights(nn.Module):
    """The network with class weights as its only class input (ids become one-hot rows)."""

    def __init__(self, net: DrumUNet1d) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor, t: Tensor, weights: Tensor) -> Tensor:
        return self.net(x, t, None, weights)


def export_onnx(net: DrumUNet1d, path: Path, length: int) -> Path:
    """The network as an ONNX graph for clips of `length` samples, any batch size."""
    k = net.num_classes + 1
    example = (
        torch.randn(2, net.cfg.audio_channels, length),
        torch.rand(2),
        torch.nn.functional.one_hot(torch.tensor([0, k - 1]), k).float(),
    )
    batch = {0: "batch"}
    # The tracer warns at every shape check in forward; the shapes are fixed per graph here.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _ByWeights(net).eval(),
            example,
            str(path),
            input_names=["x", "t", "w"],
            output_names=["v"],
            dynamic_axes={"x": batch, "t": batch, "w": batch, "v": batch},
            opset_version=17,
            dynamo=False,
        )
    return path


def _compile(runtime: str, path: Path, threads: int) -> Graph:
    if runtime == "openvino":
        try:
            import openvino
        except ImportError:
            raise RuntimeUnavailable(
                "openvino is not installed (pip install drumdiff[openvino])"
            ) from None
        # f32: the CPU plugin would otherwise pick bf16 where the CPU has it (0.05-0.2 off torch).
        config = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = str(threads)
        compiled = openvino.Core().compile_model(str(path), "CPU", config)
        local = threading.local()  # an infer request is not shared between threads

        def run_openvino(x: np.ndarray, t: np.ndarray, w: np.ndarray) -> np.ndarray:
            if not hasattr(local, "request"):
                local.request = compiled.create_infer_request()
            return np.array(local.request.infer({"x": x, "t": t, "w": w})[0])

        return run_openvino
    if runtime == "onnxruntime":
        try:
            import onnxruntime
        except ImportError:
            raise RuntimeUnavailable(
                "onnxruntime is not installed (pip install onnxruntime)"
            ) from None
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )

        def run_onnxruntime(x: np.ndarray, t: np.ndarray, w: np.ndarray) -> np.ndarray:
            return np.asarray(session.run(None, {"x": x, "t": t, "w": w})[0])

        return run_onnxruntime
    raise RuntimeUnavailable(f"unknown runtime {runtime!r}; expected one of {RUNTIMES}")


class ExportedNet(nn.Module):
    """Stands in for a `DrumUNet1d` (same call, same outputs within TOLERANCE) on another runtime.

    Graphs are exported per clip length on first use (renders at a new length pay that once).
    """

    def __init__(self, net: DrumUNet1d, runtime: str, *, threads: int = 0) -> None:
        super().__init__()
        self.runtime = runtime
        self.cfg = net.cfg
        self.num_classes = net.num_classes
        self._null = net.null_class
        self._reference = net
        self._threads = threads
        self._graphs: dict[int, Graph] = {}
        self._lock = threading.Lock()
        self._folder = tempfile.TemporaryDirectory(prefix="drumdiff-graph-")
        # Callers ask a denoiser's first parameter for its device; the graph runs on the CPU.
        self._device = nn.Parameter(torch.empty(0), requires_grad=False)

    @property
    def null_class(self) -> int:
        return self._null

    def graph(self, length: int) -> Graph:
        with self._lock:
            if length not in self._graphs:
                path = Path(self._folder.name) / f"net-{length}.onnx"
                try:
                    export_onnx(self._reference, path, length)
                except Exception as err:  # noqa: BLE001 - the exporter raises many types; torch is the fallback
                    raise RuntimeUnavailable(
                        f"exporting the network failed: {type(err).__name__}: {err}"
                    ) from None
                self._graphs[length] = _compile(self.runtime, path, self._threads)
            return self._graphs[length]

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        class_ids: Tensor | None = None,
        class_weights: Tensor | None = None,
    ) -> Tensor:
        if class_weights is None:
            if class_ids is None:
                class_ids = torch.full((x.shape[0],), self._null, dtype=torch.long)
            class_weights = torch.nn.functional.one_hot(
                class_ids.long().cpu(), self.num_classes + 1
            )
        run = self.graph(int(x.shape[-1]))
        out = run(
            x.detach().float().cpu().numpy(),
            t.detach().float().cpu().numpy(),
            class_weights.detach().float().cpu().numpy(),
        )
        return torch.from_numpy(out).to(x.dtype)


def max_difference(
    reference: DrumUNet1d, exported: nn.Module, length: int, *, seed: int = 0
) -> float:
    """Largest |exported - torch| over a probe batch: every class and the null class, noise
    levels across [0, 1], a blend of two classes."""
    g = torch.Generator().manual_seed(seed)
    k = reference.num_classes + 1
    ids = torch.arange(k)
    x = torch.randn(k, reference.cfg.audio_channels, length, generator=g)
    t = torch.linspace(0.02, 1.0, k)
    blend = torch.zeros(1, k)
    blend[0, 0] = blend[0, min(1, k - 1)] = 0.5
    with torch.inference_mode():
        ref_ids, out_ids = reference(x, t, ids), exported(x, t, ids)
        ref_mix, out_mix = reference(x[:1], t[:1], None, blend), exported(x[:1], t[:1], None, blend)
    return float(max((ref_ids - out_ids).abs().max(), (ref_mix - out_mix).abs().max()))


@dataclass(frozen=True)
class RuntimeChoice:
    """What `use_runtime` settled on, and why (shown by the daemon and `drumdiff bench`)."""

    runtime: str
    reason: str
    max_difference: float | None = None


def use_runtime(
    model: LoadedModel, runtime: str, *, threads: int = 0
) -> tuple[LoadedModel, RuntimeChoice]:
    """`model` with its network (and its distilled student's) on `runtime`, if that is safe.

    "torch" returns the model unchanged. Another runtime must be installed, the model must be on
    the CPU, and the exported graph must match torch within TOLERANCE; otherwise the model comes
    back on torch and the choice says why.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; expected one of {RUNTIMES}")
    if runtime == "torch":
        return model, RuntimeChoice("torch", "asked for")
    if next(model.denoiser.parameters()).device.type != "cpu":
        return model, RuntimeChoice("torch", f"{runtime} runs on the CPU; the model is on a GPU")
    length = model.config.model.length
    try:
        nets = [model.denoiser.net] + ([model.distilled.denoiser.net] if model.distilled else [])
        exported = [ExportedNet(net, runtime, threads=threads) for net in nets]  # type: ignore[arg-type]
        worst = max(max_difference(net, ex, length) for net, ex in zip(nets, exported))  # type: ignore[arg-type]
    except RuntimeUnavailable as err:
        return model, RuntimeChoice("torch", str(err))
    if worst > TOLERANCE:
        return model, RuntimeChoice(
            "torch", f"{runtime} differs from torch by {worst:.2g} > {TOLERANCE:g}", worst
        )
    distilled = model.distilled
    if distilled is not None:
        distilled = DistilledModel(
            distilled.denoiser.with_net(exported[1]),  # type: ignore[arg-type]
            distilled.levels,
            distilled.teacher,
        )
    swapped = replace(model, denoiser=Denoiser(exported[0]), distilled=distilled)  # type: ignore[arg-type]
    return swapped, RuntimeChoice(runtime, f"matches torch within {worst:.1g}", worst)
