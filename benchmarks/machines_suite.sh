#!/usr/bin/env bash
# Coding-for-machines evaluation suite: every codec swept on COCO128 with two
# detectors (official annotations), face privacy on the photo test split, then
# BD-rate tables, curves and the HTML report. Decodes are cached, so a re-run
# (or a second detector) only re-runs what is missing.
#
#   bash benchmarks/machines_suite.sh DATA_DIR OUT_DIR [CODECS...]
#   e.g. bash benchmarks/machines_suite.sh ../shared/data benchmarks/results/machines
#
# Environment: FACES="centerface haar" (face detectors), INSTANCE=1 (YOLOv8n-seg mask AP), THREADS=1,
# SAICM and PYTHON (default: the checkout's .venv, found from this script's path; any working directory).
# CODECS default to: the default shipped saicm model, jpeg, webp, hevc, vvc (vvenc's `medium` preset, the field's
# anchor: 10-40 s per image on a 2-core CPU, hours for COCO128; pass vvc:faster, ~1 s, for a quick look: 19 % weaker
# in PSNR BD-rate on COCO128, so not an anchor to claim against).
set -euo pipefail
DATA=${1:?usage: machines_suite.sh DATA_DIR OUT_DIR [CODECS...]}
OUT=${2:?usage: machines_suite.sh DATA_DIR OUT_DIR [CODECS...]}
[ -e "$DATA" ] || { echo "machines_suite.sh: error: $DATA: no such file or folder" >&2; exit 2; }
shift 2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SAICM=${SAICM:-$ROOT/.venv/bin/saicm}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
DEFAULT_MODEL=$($SAICM models --json | $PYTHON -c "import json,sys; print(next(m['name'] for m in json.load(sys.stdin) if m['default']))")
CODECS=("$@")
[ ${#CODECS[@]} -gt 0 ] || CODECS=("$DEFAULT_MODEL" jpeg webp hevc vvc)
IMAGES=$DATA/coco128/images
ANN=$DATA/coco128/annotations/instances_train2017.json
THREADS=${THREADS:-1}
FACES=${FACES:-centerface haar}   # face detectors for the privacy sweep
INSTANCE=${INSTANCE:-1}           # 1: also YOLOv8n-seg instance masks (mask AP) on COCO128
mkdir -p "$OUT"

quals() {  # a 6-point sweep per codec, low to high rate
  case "$1" in
    jpeg) echo 5,10,20,35,55,80 ;;
    webp|avif) echo 5,15,30,50,70,90 ;;
    hevc*|vvc*) echo 47,42,37,32,27,22 ;;
    *) echo "" ;;  # saicm models: all their rate points
  esac
}

for c in "${CODECS[@]}"; do
  tag=${c//:/-}
  q=$(quals "$c"); qa=(); [ -n "$q" ] && qa=(--qualities "$q")
  for det in picodet:$DATA/models/picodet_s_416_coco.onnx yolox:$DATA/models/yolox_nano.onnx; do
    kind=${det%%:*}
    $SAICM eval --codec "$c" "${qa[@]}" --dataset "$IMAGES" --annotations "$ANN" --task detection \
      --task-model "$det" --threads "$THREADS" -o "$OUT/coco128_${kind}_${tag}.json" --quiet
  done
  if [ "$INSTANCE" = 1 ]; then
    $SAICM eval --codec "$c" "${qa[@]}" --dataset "$IMAGES" --annotations "$ANN" --task instance \
      --task-model "yolov8-seg:$DATA/models/yolov8n-seg_int8_320.onnx" --threads "$THREADS" \
      -o "$OUT/coco128_yolov8seg_${tag}.json" --quiet
  fi
  for face in $FACES; do
    $SAICM eval --codec "$c" "${qa[@]}" --dataset "$DATA/photos/test" --task faces --task-model $face \
      -o "$OUT/photos-test_${face}_${tag}.json" --quiet
  done
done

# BD-rate tables and curves need an anchor and at least one other codec.
[ ${#CODECS[@]} -ge 2 ] || exit 0
anchor=${CODECS[0]//:/-}
for kind in picodet yolox; do
  files=("$OUT/coco128_${kind}_${anchor}.json")
  for c in "${CODECS[@]:1}"; do files+=("$OUT/coco128_${kind}_${c//:/-}.json"); done
  for metric in ap psnr; do
    $SAICM bdrate "${files[@]}" --metric $metric --json "$OUT/bdrate_${kind}_${metric}.json"
  done
  $SAICM plot "${files[@]}" --metric ap -o "$OUT/coco128_${kind}_ap" --title "COCO128, $kind (official annotations)"
done
