"""Export a training checkpoint as a shippable model: EMA weights only, fp16, config kept.

--set changes render defaults only (sampling.* and finish.*): they do not touch the weights.
--data measures the class envelopes of render finishing on that dataset's train split when the
checkpoint has none (checkpoints from before finishing existed), or again when --set changes how
they are measured (finish.envelope_block, finish.envelope_percentile or
finish.class_percentiles).
"""

from __future__ import annotations

from pathlib import Path

from drumdiff.common import fail, parser
from drumdiff.model.config import MEASURED_UNDER, apply_override, config_from_dict
from drumdiff.model.core.checkpoint import read_checkpoint, save_checkpoint
from drumdiff.model.errors import DrumDiffError

#: Finish settings the stored class envelopes were measured with: changing one re-measures them.
ENVELOPE_MEASUREMENT = tuple(f"{key}=" for key in MEASURED_UNDER if key.startswith("finish."))


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__, "export")
    p.add_argument("checkpoint", help="a training checkpoint (e.g. RUN/last.pt)")
    p.add_argument("--out", required=True, help="where to write the shipped model")
    p.add_argument("--fp32", action="store_true", help="keep fp32 weights (default: fp16)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="render default to change (sampling.* or finish.*)",
    )
    p.add_argument(
        "--data",
        help="dataset whose train split gives the class envelopes (if missing or re-measured)",
    )
    args = p.parse_args(argv)
    for override in args.set:
        if not override.startswith(("sampling.", "finish.")):
            return fail(
                f"--set {override}: only sampling.* and finish.* can change without retraining"
            )
    remeasure = [o for o in args.set if o.startswith(ENVELOPE_MEASUREMENT)]
    if remeasure and not args.data:
        return fail(
            f"--set {remeasure[0]} changes how the class envelopes are measured: give --data to "
            "measure them again"
        )
    try:
        payload = read_checkpoint(args.checkpoint)
        data = payload["config"]
        for override in args.set:
            apply_override(data, override)
        if remeasure:
            data.setdefault("finish", {})["class_envelopes"] = []
        config = config_from_dict(data)
        if args.data:
            from drumdiff.model.data.dataset import DrumDataset
            from drumdiff.model.train.trainer import measure_finish

            dataset = DrumDataset(args.data, config.model.classes, splits=("train",))
            dataset.check_compatible(config.model)
            config = measure_finish(config, dataset)
        weights = payload.get("ema") or payload.get("model")
        if weights is None:
            return fail(f"{args.checkpoint} holds no weights")
        distilled = payload.get("distilled")
        out = save_checkpoint(
            args.out,
            config,
            model_state=None,
            ema_state=weights,
            step=int(payload.get("step", 0)),
            half=not args.fp32,
            distilled=distilled,
        )
    except DrumDiffError as err:
        return fail(str(err))
    size = Path(out).stat().st_size / 2**20
    student = " and its distilled student" if distilled is not None else ""
    print(
        f"wrote {out} (step {payload.get('step', 0)}, {size:.1f} MiB, "
        f"{'fp32' if args.fp32 else 'fp16'} EMA weights{student})"
    )
    return 0
