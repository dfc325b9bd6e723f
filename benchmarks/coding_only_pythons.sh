#!/bin/bash
# The coding-only install (`pip install .`, no PyTorch) on several CPython versions, each in a fresh venv with
# the NumPy pip picks (2.x): writes the same bytes as the full install (.venv) and decodes to the same pixels.
# usage: benchmarks/coding_only_pythons.sh IMAGE [PYTHON ...]   (default: python3.11 python3.12 python3.13)
set -eu
[ -e "${1:?usage: coding_only_pythons.sh IMAGE [PYTHON ...]}" ] \
  || { echo "coding_only_pythons.sh: error: $1: no such file or folder" >&2; exit 2; }
IMG=$(realpath "$1"); shift
PYS=${*:-python3.11 python3.12 python3.13}
ROOT=$(cd "$(dirname "$0")/.." && pwd); FULL=$ROOT/.venv/bin/saicm
W=$(mktemp -d); cd "$W"; export OMP_NUM_THREADS=1 SAICM_THREADS=1
for m in mse-hyperprior-n64-v5 mse-context-n64-v6; do
  "$FULL" compress "$IMG" -o "ref-$m.saicm" --model $m --quiet >/dev/null; "$FULL" decompress "ref-$m.saicm" -o "ref-$m.png" --quiet >/dev/null
done
for py in $PYS; do
  n=$(basename "$py")
  "$py" -m venv "v-$n" && "v-$n/bin/pip" install -q "$ROOT" 2>&1 | grep -v WARNING || true
  echo "== $("v-$n/bin/python" -c 'import sys, numpy; print("CPython", sys.version.split()[0], "NumPy", numpy.__version__)')," \
       "venv $(du -sm "v-$n" | cut -f1) MB, torch importable: $("v-$n/bin/python" -c 'import torch; print("yes")' 2>/dev/null || echo no)"
  for m in mse-hyperprior-n64-v5 mse-context-n64-v6; do
    "v-$n/bin/saicm" compress "$IMG" -o "$n-$m.saicm" --model $m --quiet >/dev/null
    cmp -s "$n-$m.saicm" "ref-$m.saicm" && same=identical || same=DIFFERENT
    "v-$n/bin/saicm" decompress "ref-$m.saicm" -o "$n-$m.png" --quiet >/dev/null
    diff=$("$ROOT/.venv/bin/python" -c "import sys, numpy as np; from PIL import Image; a, b = (np.asarray(Image.open(p), int) for p in sys.argv[1:]); print(int(np.abs(a - b).max()))" "$n-$m.png" "ref-$m.png")
    echo "$m: bytes $same to the full install's; its file decoded here: max pixel difference $diff"
  done
done
rm -rf "$W"
