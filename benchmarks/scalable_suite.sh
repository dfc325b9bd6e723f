#!/usr/bin/env bash
# Scalable coding for humans and machines: both layers of a scalable model against simulcast, the single-layer
# MSE model and the conventional codecs, on the photo test split and COCO128 (PSNR), the machine layer on
# COCO128 detection (it must equal the base model's), and faces on the photo test split.
#
#   bash benchmarks/scalable_suite.sh DATA_DIR OUT_DIR SCALABLE_MODEL [BASE_QUALITIES]
#   e.g. bash benchmarks/scalable_suite.sh ../shared/data benchmarks/results/scalable scalable-off02v5-m4-cond "2 4 6"
#
# The human layer is swept over its rate points at each fixed machine rate point (base=K: a camera streams the
# machine layer at one rate, a person asks for the human view) and with both rates moving together (base=pair).
# Simulcast = the base model's file at the same machine rate point + a separate MSE file (MSE=..., default
# mse-hyperprior-n64-v5). Environment: THREADS (task models), MSE, COCO=0 to skip COCO128, SAICM and PYTHON
# (default: the checkout's .venv, found from this script's path; any working directory).
set -euo pipefail
DATA=${1:?usage: scalable_suite.sh DATA_DIR OUT_DIR SCALABLE_MODEL [BASE_QUALITIES]}
OUT=${2:?}
MODEL=${3:?}
[ -e "$DATA" ] || { echo "scalable_suite.sh: error: $DATA: no such file or folder" >&2; exit 2; }
BQ=${4:-"2 4 6"}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SAICM=${SAICM:-$ROOT/.venv/bin/saicm}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
MSE=${MSE:-mse-hyperprior-n64-v5}
THREADS=${THREADS:-1}
COCO=${COCO:-1}
BASE=$($PYTHON -c "import saicm; n, _ = saicm.load_model('$MODEL'); print(n.base_info.name)")
mkdir -p "$OUT"

sweep() {  # sweep DATASET_TAG DATASET_DIR CODEC TAG
  $SAICM eval --codec "$3" --dataset "$2" -o "$OUT/$1_$4.json" --quiet
}
for ds in photos-test:$DATA/photos/test coco128:$DATA/coco128/images; do
  tag=${ds%%:*}; dir=${ds#*:}
  [ "$tag" = coco128 ] && [ "$COCO" != 1 ] && continue
  sweep "$tag" "$dir" "$MODEL,layer=machine" "$MODEL-machine"
  sweep "$tag" "$dir" "$MODEL,base=pair" "$MODEL-human-pair"
  sweep "$tag" "$dir" "simulcast:$BASE+$MSE,base=pair" "simulcast-pair"
  for b in $BQ; do
    sweep "$tag" "$dir" "$MODEL,base=$b" "$MODEL-human-b$b"
    sweep "$tag" "$dir" "simulcast:$BASE+$MSE,base=$b" "simulcast-b$b"
  done
  [ -f "$OUT/${tag}_$MSE.json" ] || sweep "$tag" "$dir" "$MSE" "$MSE"
done

# machine layer on COCO128 detection: must give the base model's AP at every rate point
if [ "$COCO" = 1 ]; then
  $SAICM eval --codec "$MODEL,layer=machine" --dataset "$DATA/coco128/images" \
    --annotations "$DATA/coco128/annotations/instances_train2017.json" --task detection \
    --task-model "picodet:$DATA/models/picodet_s_416_coco.onnx" --threads "$THREADS" \
    -o "$OUT/coco128_picodet_$MODEL-machine.json" --quiet
fi
# faces: the human layer should restore what the machine layer drops
for c in "$MODEL,layer=machine:$MODEL-machine" "$MODEL,base=4:$MODEL-human-b4"; do
  $SAICM eval --codec "${c%%:*}" --dataset "$DATA/photos/test" --task faces --task-model centerface \
    -o "$OUT/photos-test_centerface_${c##*:}.json" --quiet
done
