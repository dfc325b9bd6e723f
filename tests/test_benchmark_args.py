"""The benchmark scripts check the data paths they are given as they parse their arguments: a missing one is argparse's
usage and one line naming it, exit 2, before any model loads (they ended in a traceback, tcm_speed.py ~30 s and
600 MB of checkpoints in)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# (script, its arguments; MISSING is a path that does not exist, TMP a folder that does): cheap ones, as the check
# comes before anything heavy (figures_saicm.py imports PyTorch at its top: ~3 s)
CASES = [
    ("engine_startup.py", ["MISSING"]),
    ("engine_cross.py", ["MISSING", "--limit", "1"]),
    ("cross_cpu_check.py", ["decode", "MISSING", "--out", "TMP/out"]),
    ("padding_cost.py", ["MISSING"]),
    ("scalable_speed.py", ["MISSING", "--repeats", "1"]),
    ("analysis_int8_probe.py", ["--calibrate", "TMP", "--data", "MISSING", "--repeats", "1"]),
    ("tcm_speed.py", ["--work", "TMP", "--image", "MISSING"]),
    ("figures_saicm.py", ["frames", "MISSING#0:2", "label=MISSING", "-o", "TMP/strip.png"]),
]


@pytest.mark.parametrize("script, args", CASES, ids=[c[0] for c in CASES])
def test_a_missing_data_path_is_one_line_and_exit_2_before_any_work(tmp_path, script, args):
    missing = tmp_path / "no" / "such-photos"
    argv = [a.replace("MISSING", str(missing)).replace("TMP", str(tmp_path)) for a in args]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
               OMP_NUM_THREADS="1", SAICM_THREADS="1", PYTHONWARNINGS="ignore")
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *argv], capture_output=True, text=True,
                       timeout=120, env=env, cwd=tmp_path)
    assert "Traceback" not in r.stderr, r.stderr
    errors = [line for line in r.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith(f"{script}") and errors[0].endswith(
        f"{missing}: no such file or folder"), r.stderr
    assert r.returncode == 2
    assert r.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written (tcm_speed.py: no checkpoints)


def test_the_machines_suite_runs_vvc_at_the_medium_preset_by_default(tmp_path):
    """Without a codec list the suite ran `vvc:faster` (19 % weaker than vvenc's `medium` in PSNR BD-rate on
    COCO128): the field's anchor, and the project's rule, is `medium` (the anchors audit). A stub `saicm` records
    the calls the suite makes."""
    calls = tmp_path / "calls"
    stub = tmp_path / "saicm"
    stub.write_text("#!/bin/sh\necho \"$*\" >> " + str(calls) + "\n"
                    "[ \"$1\" = models ] && echo '[{\"name\": \"m\", \"default\": true}]'\nexit 0\n")
    stub.chmod(0o755)
    (tmp_path / "data").mkdir()
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "machines_suite.sh"), str(tmp_path / "data"),
                        str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, SAICM=str(stub), PYTHON=sys.executable, FACES="centerface"))
    assert r.returncode == 0, r.stderr
    codecs = {line.split("--codec ")[1].split()[0] for line in calls.read_text().splitlines() if "--codec" in line}
    assert codecs == {"m", "jpeg", "webp", "hevc", "vvc"}
