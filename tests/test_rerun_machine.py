"""A small stateful property test of folder jobs rerun over days: images added, replaced, damaged and removed between
``saicm compress`` / ``decompress`` runs with each ``--existing`` mode, outputs damaged; after every run, each
file's outcome is the one its state calls for, every output counted done is the current input's own file (a fresh
encode of it, byte for byte; a decode of the current ``.saicm``), the summary and the exit status say so, and no
input is touched. Cut down from a longer run (subprocesses, signals, ``--jobs 2``, ``strip``) whose findings have
plain tests in test_reruns.py. File times are set by the test (a clock of its own, two seconds a step), so that what
is older than what does not depend on the file system's resolution."""

import io
import json
import os
import time
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule
from PIL import Image

import saicm
from saicm.cli import main

from .conftest import natural_image

MODEL = "mse-hyperprior-n64-v3"  # the smallest shipped model
NAMES = ("a.png", "b.png", "sub/c.png")
_refs: dict = {}


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(natural_image(32, 32, seed=seed)).save(buf, format="PNG")
    return buf.getvalue()


def _encode(data: bytes, quality: int) -> bytes:
    if (data, quality) not in _refs:
        _refs[data, quality] = saicm.compress(io.BytesIO(data), model=MODEL, quality=quality)
    return _refs[data, quality]


def _damaged(data: bytes) -> bool:
    try:
        saicm.describe(data)
    except saicm.FormatError:
        return True
    return False


def _files(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))
            if p.is_file()}


class Reruns(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        import tempfile

        self.root = Path(tempfile.mkdtemp(prefix="saicm-reruns-"))
        self.inp, self.out, self.dec = self.root / "in", self.root / "out", self.root / "dec"
        self.inp.mkdir()
        self.images: dict[str, bytes | None] = {}  # name -> its PNG bytes (None: damaged)
        self.clock = int(time.time()) - 10_000_000

    def teardown(self):
        import shutil

        shutil.rmtree(self.root, ignore_errors=True)

    def _tick(self, *paths: Path) -> None:
        """The files just written, stamped with the test's next time (later than every file before)."""
        self.clock += 2
        for p in paths:
            os.utime(p, (self.clock, self.clock))

    def _put(self, name: str, data: bytes) -> None:
        p = self.inp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        self._tick(p)

    @initialize(seed=st.integers(0, 3))
    def first_images(self, seed):
        for i, name in enumerate(NAMES[:2]):
            self._put(name, _png(seed + i))
            self.images[name] = _png(seed + i)
        self.compress("overwrite", 4)  # (a folder coded once: what the reruns start from)

    @rule(name=st.sampled_from(NAMES), seed=st.integers(0, 5))
    def put_image(self, name, seed):  # a new image, or one replaced under its name
        self._put(name, _png(seed))
        self.images[name] = _png(seed)

    @precondition(lambda self: self.images)
    @rule(data=st.data())
    def damage_image(self, data):
        name = data.draw(st.sampled_from(sorted(self.images)))
        self._put(name, b"no longer a picture")
        self.images[name] = None

    @precondition(lambda self: len(self.images) > 1)
    @rule(data=st.data())
    def remove_image(self, data):
        name = data.draw(st.sampled_from(sorted(self.images)))
        (self.inp / name).unlink()
        del self.images[name]

    @precondition(lambda self: self.out.exists() and any(self.out.rglob("*.saicm")))
    @rule(data=st.data(), keep=st.sampled_from([0, 1, 40]))
    def damage_output(self, data, keep):  # emptied, or cut short
        p = data.draw(st.sampled_from(sorted(self.out.rglob("*.saicm"))))
        p.write_bytes(p.read_bytes()[:keep])
        self._tick(p)

    def _run(self, argv, folder):
        """``saicm ARGV --log LOG`` on ``folder``'s files; returns the exit status, its log lines by input name
        (relative to ``folder``), the summary and the outputs' folder before the run; stamps what it wrote."""
        log = self.root / "job.jsonl"
        log.unlink(missing_ok=True)
        target = Path(argv[argv.index("-o") + 1])
        before = _files(target) if target.exists() else {}
        inputs = _files(self.inp)
        import contextlib

        err, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = main([*argv, "--log", str(log), "--quiet"])
        assert _files(self.inp) == inputs, "an input was changed"
        assert not [p for p in self.root.rglob(".*") if ".part" in p.name], "a temporary file was left"
        changed = [target / k for k, v in _files(target).items() if before.get(k) != v]
        self._tick(*changed)
        lines = {str(Path(x["input"]).relative_to(folder)): x for x in map(json.loads, log.read_text().splitlines())}
        statuses = [x["status"] for x in lines.values()]
        assert code == (1 if "failed" in statuses else 0), (code, statuses, err.getvalue())
        summary = out.getvalue()
        assert summary.split(" ")[1:4] == [str(statuses.count("written")), "of", str(len(lines))], summary
        assert ("already there" in summary) == ("skipped" in statuses), summary
        return lines, before

    @rule(existing=st.sampled_from(["skip", "overwrite", "refuse"]), quality=st.sampled_from([4, 1]))
    def compress(self, existing, quality):
        lines, before = self._run(["compress", str(self.inp), "-o", str(self.out), "--model", MODEL, "--quality",
                                   str(quality), "--existing", existing], self.inp)
        assert sorted(lines) == sorted(self.images)
        for name, line in lines.items():
            data, dst = self.images[name], Path(line["output"])
            rel = str(dst.relative_to(self.out))
            old = before.get(rel)
            if data is None:
                want = "failed"
            elif old is None or existing == "overwrite":
                want = "written"
            elif existing == "refuse":
                want = "failed"
            elif not old[0] or old[1] < (self.inp / name).stat().st_mtime_ns:
                want = "written"  # (empty, or older than its image: made again)
            else:
                want = "skipped" if old[0] == _encode(data, quality) else "failed"
            assert line["status"] == want, (name, line, existing)
            if want == "failed" and old is not None:
                assert dst.read_bytes() == old[0], "a failed file's earlier output was changed"
            elif want != "failed":
                assert dst.read_bytes() == _encode(data, quality), f"{rel} is not {name}'s own file"

    @precondition(lambda self: self.out.exists() and any(self.out.rglob("*.saicm")))
    @rule(existing=st.sampled_from(["overwrite", "skip", "refuse"]))
    def decompress(self, existing):
        coded = {str(p.relative_to(self.out)): p.read_bytes() for p in self.out.rglob("*.saicm")}
        lines, before = self._run(["decompress", str(self.out), "-o", str(self.dec), "--existing", existing],
                                  self.out)
        assert sorted(lines) == sorted(coded)
        for name, line in lines.items():
            dst = Path(line["output"])
            if line["status"] == "failed":  # refused, or a damaged file
                assert existing == "refuse" and str(dst.relative_to(self.dec)) in before or _damaged(coded[name]), line
                continue
            assert existing != "refuse" or str(dst.relative_to(self.dec)) not in before
            want = np.asarray(saicm.decompress(coded[name]))
            assert np.array_equal(np.asarray(Image.open(dst)), want), f"{dst} is not {name}'s decode"


# (a fixed seed: the same sequences on every run, and ones that go through each rule; derandomize=True drew
# mostly one rule over and over)
TestReruns = seed(2)(Reruns.TestCase)
TestReruns.settings = settings(max_examples=40, stateful_step_count=10, deadline=None, database=None,
                               suppress_health_check=list(HealthCheck))
