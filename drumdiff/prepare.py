"""Turn folders of drum samples into a training dataset (resampled, trimmed, labelled, split by
kit)."""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from drumdiff.common import fail, parser
from drumdiff.model.config import load_config
from drumdiff.model.data.dataset import prepare_dataset
from drumdiff.model.errors import DrumDiffError


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__, "prepare")
    p.add_argument("sources", nargs="+", help="folders (or files) to scan recursively")
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("--config", help="model/training config whose model and data sections apply")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config override"
    )
    p.add_argument(
        "--exclude", action="append", default=[], help="skip paths or kits containing this text"
    )
    p.add_argument("--test-kit", action="append", default=[], help="put this kit in the test split")
    p.add_argument(
        "--validation-kit", action="append", default=[], help="put this kit in the validation split"
    )
    args = p.parse_args(argv)
    try:
        config = load_config(args.config, args.set)
        report = prepare_dataset(
            args.sources,
            args.out,
            config.model,
            config.data,
            exclude=args.exclude,
            test_kits=args.test_kit,
            validation_kits=args.validation_kit,
            progress=lambda items: tqdm(items, desc="preparing", unit="file"),
        )
    except DrumDiffError as err:
        return fail(str(err))
    summary = report.to_json()
    print(f"kept {summary['kept']} clips into {Path(args.out).resolve()}")
    print("per class: " + json.dumps(summary["per_class"]))
    print("per split: " + json.dumps(summary["per_split"]))
    print("rejected per reason: " + json.dumps(summary["per_reason"]))
    if report.reused:
        print(f"reused {report.reused} processed files from the cache")
    print(f"report: {Path(args.out).resolve() / 'report.json'}")
    return 0
