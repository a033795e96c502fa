#!/usr/bin/env bash
# A default-model candidate in one device session: train the full model on the GPU
# (scripts/gpu_train.sh), then distil its 4-step student with the shipped default's recipe
# (model card, "The 4-step default") and export the pair as the daemon would load it. Without
# the student, a better teacher cannot become the default: fresh hits render with the student.
#
#   DATA=packed-dataset OUT=/tmp/out MINUTES=5 DISTILL_MINUTES=2.5 SKIP_MINUTES=1 \
#       bash scripts/gpu_default.sh [--set KEY=VALUE ...]      (the --set go to `train`)
#
# OUT then holds gpu_train.sh's files (the teacher's fp16 EMA exports ema-STEP.pt, train.log,
# metrics.jsonl), the two distillation logs and metrics, and default-candidate.pt: the newest
# teacher export with its student, to judge here with
#   drumdiff eval OUT/default-candidate.pt --data data/hydrogen --n 40 --steps 4 --unfinished
# DISTILL_STEPS / SKIP_STEPS cap the two student stages (2,000 and 500 steps in the recipe),
# DISTILL_MINUTES / SKIP_MINUTES their time; DISTILL_SET adds distill settings to both
# ("distill.trajectories=1024 distill.batch_size=32").
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATA:?set DATA to a prepared dataset}" "${OUT:?set OUT to a folder for the results}"
RUNS=${RUNS:-/tmp/drumdiff-runs}
DISTILL_STEPS=${DISTILL_STEPS:-2000}
SKIP_STEPS=${SKIP_STEPS:-500}
DISTILL_MINUTES=${DISTILL_MINUTES:-2.5}
SKIP_MINUTES=${SKIP_MINUTES:-1}
export RUNS PYTHONUNBUFFERED=1

bash scripts/gpu_train.sh "$@"
# gpu_train.sh made the installed wheels importable for itself; the same for the steps below.
if [ -d /tmp/site ]; then export PYTHONPATH=/tmp/site:${PYTHONPATH:-}; fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}

teacher=$(find "$OUT" -maxdepth 1 -name 'ema-*.pt' | sort | tail -1)
[ -n "$teacher" ] || { echo "gpu_default: training left no checkpoint in $OUT" >&2; exit 1; }
echo "teacher: $teacher"

stamp=$(date +%s)
first=$RUNS/distill-$stamp
skips=$RUNS/distill-skip-$stamp
recipe=(--set distill.steps=4 --set "distill.keep=[0,4,6,8,12]" --set distill.rollout=0.5
        --set distill.lr=1e-4 --set distill.onset_weight=10)
extra=()
for setting in ${DISTILL_SET:-}; do extra+=(--set "$setting"); done

python3 -m drumdiff distill "$teacher" --run "$first" "${recipe[@]}" "${extra[@]}" \
    --stop-at "$DISTILL_STEPS" --minutes "$DISTILL_MINUTES" --no-progress 2>&1 | tee "$OUT/distill.log"
python3 -m drumdiff distill "$teacher" --run "$skips" --trajectories-from "$first" "${recipe[@]}" \
    --set distill.onset_skip_s=0.06 --set "distill.init=$first/last.pt" "${extra[@]}" \
    --stop-at "$SKIP_STEPS" --minutes "$SKIP_MINUTES" --no-progress 2>&1 | tee "$OUT/distill-skip.log"
for run in "$first" "$skips"; do
    if [ -f "$run/metrics.jsonl" ]; then
        cp "$run/metrics.jsonl" "$OUT/$(basename "${run%-"$stamp"}")-metrics.jsonl"
    fi
done
python3 -m drumdiff export "$skips/last.pt" --out "$OUT/default-candidate.pt" \
    --set sampling.sampler=distilled --set sampling.steps=4 --set sampling.eta=1.0
ls -la "$OUT"
