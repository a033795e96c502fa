#!/usr/bin/env bash
# Train the default model on a GPU machine for a fixed time, starting from the shipped weights,
# and leave fp16 EMA exports of a few checkpoints (plus the log and metrics) in $OUT.
#
#   DATA=packed-dataset [INIT=weights.pt] [CONFIG=config.yaml] MINUTES=7 OUT=/tmp/out \
#       bash scripts/gpu_train.sh [--set KEY=VALUE ...]
#
# DATA is a prepared (or packed: scripts/pack_dataset.py) dataset; INIT defaults to the shipped
# model and CONFIG to INIT's own config, so the run keeps its model space; INIT=none trains
# from scratch (then CONFIG is required). The machine needs torch, numpy, pyyaml, tqdm
# and soxr; wheels in .whl/ are installed first when present (for machines without an index).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATA:?set DATA to a prepared dataset}" "${OUT:?set OUT to a folder for the results}"
MINUTES=${MINUTES:-7}
INIT=${INIT:-model/weights/default.pt}
RUNS=${RUNS:-/tmp/drumdiff-runs}
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
mkdir -p "$OUT"
nvidia-smi -L || true
python3 -c "import torch, soxr, yaml, tqdm; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
INIT_ARGS=(--init "$INIT")
if [ "$INIT" = none ]; then
    : "${CONFIG:?INIT=none needs a CONFIG}"
    INIT_ARGS=()
fi
if [ -z "${CONFIG:-}" ]; then
    CONFIG=$RUNS/shipped.yaml
    mkdir -p "$RUNS"
    python3 -c "
import sys, yaml
from drumdiff.model.core.checkpoint import full_model_config, read_checkpoint
yaml.safe_dump(full_model_config(read_checkpoint(sys.argv[2])), open(sys.argv[1], 'w'), sort_keys=False)" "$CONFIG" "$INIT"
fi
python3 -m drumdiff train "$CONFIG" --data "$DATA" "${INIT_ARGS[@]}" --runs "$RUNS" \
    --minutes "$MINUTES" --no-progress "$@" 2>&1 | tee "$OUT/train.log"
RUN=$(sed -n 's/^run folder: //p' "$OUT/train.log" | tail -1)
if [ -f "$RUN/metrics.jsonl" ]; then cp "$RUN/metrics.jsonl" "$OUT/"; fi
# The last checkpoint and three evenly spaced earlier ones, as shippable fp16 EMA files.
python3 - "$RUN" "$OUT" <<'PY'
import subprocess, sys
from pathlib import Path
run, out = Path(sys.argv[1]), Path(sys.argv[2])
saved = sorted(run.glob("checkpoints/step-*.pt"))
picks = sorted({saved[round(i * (len(saved) - 1) / 3)] for i in range(4)}) if saved else []
for path in picks:
    step = int(path.stem.split("-")[1])
    subprocess.run([sys.executable, "-m", "drumdiff", "export", str(path), "--out", str(out / f"ema-{step:07d}.pt")], check=True)
PY
ls -la "$OUT"
