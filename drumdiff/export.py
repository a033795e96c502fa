"""Export a training checkpoint as a shippable model: EMA weights only, fp16, config kept."""

from __future__ import annotations

from pathlib import Path

from drumdiff.common import fail, parser
from model.checkpoint import read_checkpoint, save_checkpoint
from model.config import config_from_dict
from model.errors import DrumDiffError


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__, "export")
    p.add_argument("checkpoint", help="a training checkpoint (e.g. RUN/last.pt)")
    p.add_argument("--out", required=True, help="where to write the shipped model")
    p.add_argument("--fp32", action="store_true", help="keep fp32 weights (default: fp16)")
    args = p.parse_args(argv)
    try:
        payload = read_checkpoint(args.checkpoint)
        config = config_from_dict(payload["config"])
        weights = payload.get("ema") or payload.get("model")
        if weights is None:
            return fail(f"{args.checkpoint} holds no weights")
        out = save_checkpoint(
            args.out, config, model_state=None, ema_state=weights, step=int(payload.get("step", 0)),
            half=not args.fp32,
        )
    except DrumDiffError as err:
        return fail(str(err))
    size = Path(out).stat().st_size / 2**20
    print(f"wrote {out} (step {payload.get('step', 0)}, {size:.1f} MiB, {'fp32' if args.fp32 else 'fp16'} EMA weights)")
    return 0
