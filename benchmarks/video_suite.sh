#!/usr/bin/env bash
# Video: NeRV, SA-NeRV (and HNeRV) against each other, HEVC/VVC in video mode and image codecs frame by frame,
# on the two test clips: detection AP (PicoDet, pseudo ground truth: the detector on the original frames), PSNR,
# MS-SSIM, bpp from file sizes, encode/decode seconds. One results file per clip and codec.
#
#   bash benchmarks/video_suite.sh DATA_DIR OUT_DIR [EPOCHS]
#   e.g. bash benchmarks/video_suite.sh ../shared/data benchmarks/results/video 150
#
# Clips (docs/video.md#measured-on-real-clips): foreman frames 0-29 at its own 352x288, vtest frames 0-29
# resized to 384x288 (its 768x576 quartered, so that one encode takes minutes, not hours, on one core).
# NeRV and SA-NeRV at presets xs, s, m (qualities 1-3), EPOCHS epochs of the fit stage (default 150; the
# pruning and quantisation-aware stages add EPOCHS/6 and EPOCHS/10). HNeRV at HNERV_EPOCHS (default 110:
# about the same wall time, its encoder costs ~35 % more per epoch). Encoded clips are cached (CACHE, default
# ~/.cache/saicm/decoded), so a second detector (TASK=yolox:PATH, TAG=yolox) re-uses them.
# Environment: ONLY="nerv sa-nerv hnerv base" (which groups), TASK, TAG, SAICM (default: the checkout's
# .venv/bin/saicm, found from this script's path; any working directory).
# Tables: python benchmarks/video_table.py OUT_DIR --clips foreman-0-30,vtest-0-30-384 --anchor nerv-e150
set -euo pipefail
DATA=${1:?usage: video_suite.sh DATA_DIR OUT_DIR [EPOCHS]}
OUT=${2:?}
[ -e "$DATA" ] || { echo "video_suite.sh: error: $DATA: no such file or folder" >&2; exit 2; }
E=${3:-150}
HE=${HNERV_EPOCHS:-110}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SAICM=${SAICM:-$ROOT/.venv/bin/saicm}
TASK=${TASK:-picodet:$DATA/models/picodet_s_416_coco.onnx}
TAG=${TAG:-picodet}
ONLY=${ONLY:-"nerv sa-nerv hnerv base"}
CACHE=${CACHE:+--cache $CACHE}
mkdir -p "$OUT"

run() {  # run CLIP_TAG DATASET CODEC QUALITIES FILE_TAG
  OMP_NUM_THREADS=1 $SAICM eval --codec "$3" ${4:+--qualities $4} --dataset "$2" --task detection \
    --task-model "$TASK" --threads 1 $CACHE -o "$OUT/$1_${TAG}_$5.json" --quiet
}
for clip in "foreman-0-30:$DATA/video/foreman_cif_300f.264#0:30" \
            "vtest-0-30-384:$DATA/video/vtest_768x576_795f.avi#0:30@384x288"; do
  t=${clip%%:*}; ds=${clip#*:}
  for group in $ONLY; do
    case $group in
      nerv) run "$t" "$ds" "nerv:epochs=$E" 1,2,3 "nerv-e$E" ;;
      sa-nerv) run "$t" "$ds" "sa-nerv:epochs=$E" 1,2,3 "sa-nerv-e$E" ;;
      hnerv) run "$t" "$ds" "hnerv:epochs=$HE" 1,2,3 "hnerv-e$HE" ;;
      base)
        run "$t" "$ds" hevc-video 12,17,22,27,32,37 hevc-video-medium
        run "$t" "$ds" vvc-video 12,17,22,27,32,37 vvc-video-medium
        for c in saicm-regions-a048-off02-n64-v5 mse-hyperprior-n64-v5 webp; do run "$t" "$ds" "$c" "" "$c"; done ;;
    esac
  done
done
