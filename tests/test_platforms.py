"""Other platforms, simulated on Linux (a platform audit of 0.23.0): Windows' missing fork hooks and code-page
stdout, case-insensitive file systems, CPU affinity, mask manifests written with backslashes."""

import importlib
import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def test_the_engine_imports_where_there_is_no_fork(monkeypatch):
    """``os.register_at_fork`` exists only where ``fork`` does: on Windows every compress and decompress (and
    ``import saicm`` under $SAICM_THREADS) stopped at it with an AttributeError."""
    import saicm.engine.parallel as parallel

    monkeypatch.delattr(os, "register_at_fork")
    try:
        importlib.reload(parallel)
        assert parallel.threads() >= 1
    finally:
        monkeypatch.undo()
        importlib.reload(parallel)


def test_text_with_greek_letters_goes_to_a_code_page_stdout():
    """Redirected or piped on Windows, stdout writes in the ANSI code page: the λ of `saicm models` ended in a
    UnicodeEncodeError traceback. Now what the code page cannot hold is written as an escape."""
    env = dict(os.environ, PYTHONIOENCODING="cp1252", PYTHONWARNINGS="ignore")
    r = subprocess.run([sys.executable, "-m", "saicm", "models"], capture_output=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-1000:]
    out = r.stdout.decode("cp1252")
    assert "\\u03bb" in out and "mse-hyperprior-n64-v5" in out
    r = subprocess.run([sys.executable, "-m", "saicm", "train", "--help"], capture_output=True, env=env, timeout=120)
    assert r.returncode == 0 and b"Traceback" not in r.stderr


def test_masks_of_names_that_differ_in_case_are_refused_as_one_file():
    """``Cat.jpg`` and ``cat.png`` share one mask on a case-insensitive file system (macOS, Windows): training read
    the wrong mask for one of them in silence."""
    from saicm.masks.job import mask_name_clash

    assert mask_name_clash([Path("Cat.jpg"), Path("dog.png"), Path("cat.png")]) == (Path("Cat.jpg"), Path("cat.png"))
    assert mask_name_clash([Path("a/cat.jpg"), Path("b/cat.png")]) is None


def _cgroup_tree(tmp_path, name, lines, files):
    """A process's /proc/self/cgroup (``lines``) and a cgroup file system holding ``files`` (path → text), under
    ``tmp_path/name``: the two paths ``cgroup_cpu_limit`` reads."""
    (tmp_path / name).mkdir()
    (tmp_path / name / "cgroup").write_text(lines)
    for rel, text in files.items():
        (tmp_path / name / "fs" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name / "fs" / rel).write_text(text)
    return str(tmp_path / name / "cgroup"), str(tmp_path / name / "fs")


def test_thread_counts_follow_the_cpu_affinity(monkeypatch):
    """Under taskset, a container's cpuset or a scheduler's allocation, the process may use fewer CPUs than the
    machine has: os.cpu_count() gave two threads per process under `taskset -c 0`."""
    from saicm.codec.batch import _worker_threads
    from saicm.engine import parallel

    monkeypatch.delenv("SAICM_THREADS", raising=False)
    monkeypatch.setattr(parallel, "cgroup_cpu_limit", lambda: None, raising=False)  # (no CPU quota: this machine's)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert parallel.threads() == 1 and _worker_threads(1) == 1
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # (macOS, Windows): every CPU
    assert parallel.threads() == 64 and _worker_threads(4) == 16


def test_thread_counts_follow_a_containers_cpu_quota(monkeypatch, tmp_path):
    """`docker run --cpus 2` and a Kubernetes CPU limit set a CFS quota, not the affinity: on a 64-CPU host saicm ran
    64 threads per pool and gave each `--jobs` worker a 64-CPU share, all throttled to two CPUs' worth of time."""
    from saicm.codec.batch import _worker_threads
    from saicm.engine import parallel

    monkeypatch.delenv("SAICM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    monkeypatch.setattr(parallel, "cgroup_cpu_limit", lambda: 2, raising=False)
    assert parallel.usable_cpus() == 2 and parallel.threads() == 2 and _worker_threads(2) == 1
    monkeypatch.undo()

    from saicm.engine.parallel import cgroup_cpu_limit

    tree = partial(_cgroup_tree, tmp_path)

    # v2: the container's own group shows as /, its limit is on the root it sees; 1.5 CPUs' worth: 2 threads
    assert cgroup_cpu_limit(*tree("v2", "0::/\n", {"cpu.max": "150000 100000\n"})) == 2
    assert cgroup_cpu_limit(*tree("v2max", "0::/job\n", {"cpu.max": "max 100000\n",
                                                             "job/cpu.max": "max 100000\n"})) is None
    assert cgroup_cpu_limit(*tree("v2parent", "0::/a/b\n", {"a/cpu.max": "400000 100000\n",
                                                               "a/b/cpu.max": "max 100000\n"})) == 4
    # v1, as Docker writes it: -1 is none
    assert cgroup_cpu_limit(*tree("v1", "4:cpu,cpuacct:/docker/x\n3:memory:/docker/x\n",
                                  {"cpu/docker/x/cpu.cfs_quota_us": "300000\n",
                                   "cpu/docker/x/cpu.cfs_period_us": "100000\n"})) == 3
    assert cgroup_cpu_limit(*tree("v1none", "1:cpu:/\n", {"cpu/cpu.cfs_quota_us": "-1\n",
                                                            "cpu/cpu.cfs_period_us": "100000\n"})) is None
    assert cgroup_cpu_limit(str(tmp_path / "absent"), str(tmp_path)) is None  # (not Linux)


def test_a_thread_count_that_is_none_counts_as_unset_for_folder_jobs_too_and_is_said(monkeypatch, recwarn):
    """SAICM_THREADS=abc (or 0, or 2.5) counted as unset for the engine but as set for a folder job, whose every
    worker then took every CPU (`--jobs 2` on two cores: four threads); and it was ignored in silence."""
    import saicm
    from saicm.codec.batch import _worker_threads
    from saicm.engine import parallel

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(parallel, "_said_ignored", set(), raising=False)  # (each said once: anew here)
    for value in ("abc", "0", "2.5"):
        monkeypatch.setenv("SAICM_THREADS", value)
        assert _worker_threads(2) == 4 and parallel.threads() == 8, value
    monkeypatch.setenv("SAICM_THREADS", "3")
    assert _worker_threads(2) == 3
    said = [str(w.message) for w in recwarn if issubclass(w.category, saicm.SaicmWarning)]
    assert len(said) == 3 and all("is not a whole number >= 1: ignored" in m for m in said), said  # (each once)


@pytest.mark.parametrize("value", ["0", "-1", "abc", "99999999999999999999"])  # (the last: past libgomp's long)
def test_an_omp_thread_count_that_is_none_counts_as_unset_and_is_said(value):
    """OMP_NUM_THREADS=0 (or -1, abc) was passed to PyTorch as it was: libgomp's own "Invalid value for environment
    variable OMP_NUM_THREADS" and every CPU, SAICM_THREADS=1 not applied (import saicm's setdefault kept the bad
    value); it counts as unset now, as an invalid SAICM_THREADS does, and the command line says so once."""
    env = dict(os.environ, OMP_NUM_THREADS=value, SAICM_THREADS="1", PYTHONWARNINGS="default")
    r = subprocess.run([sys.executable, "-c", "import os, saicm; print(os.environ.get('OMP_NUM_THREADS'))"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "1" and r.stderr == "", (r.stdout, r.stderr)  # (SAICM_THREADS's; nothing said yet)
    r = subprocess.run([sys.executable, "-m", "saicm", "models", "--json"], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [f"saicm: warning: OMP_NUM_THREADS={value!r} is not a whole number >= 1: ignored "
                                     "(the default, a thread per CPU, or SAICM_THREADS)"], r.stderr
    env = dict(env, OMP_NUM_THREADS="4,2")  # (OpenMP's list of counts per nesting level: valid, kept)
    r = subprocess.run([sys.executable, "-c", "import os, saicm; print(os.environ.get('OMP_NUM_THREADS'))"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "4,2" and r.stderr == "", r.stderr


@pytest.mark.parametrize("value", [None, "1", "8"])
def test_import_saicm_loads_no_thread_pool_machinery_for_a_usual_omp_thread_count(value):
    """`import saicm` checked OMP_NUM_THREADS by importing saicm.engine.parallel, which imported threading and
    concurrent.futures (with logging) at its top: a third more start-up time for every `import saicm` and command,
    OMP_NUM_THREADS unset or a plain count. Checked there only when it is something else; the pool's module is
    imported where a pool is made."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "SAICM_THREADS")}
    if value is not None:
        env["OMP_NUM_THREADS"] = value
    code = ("import sys, saicm\nprint(sorted(m for m in ('saicm.engine.parallel', 'concurrent.futures')"
            " if m in sys.modules))\nfrom saicm.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit:\n"
            "    pass\nprint('saicm.engine.parallel' in sys.modules)\n"
            "import saicm.engine.parallel\nprint('concurrent.futures' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[0] == "[]" and lines[1].startswith("saicm ") and lines[2:4] == ["False", "False"], r.stdout


def _blas_threads(job):  # a folder job for the pool (module level: the workers import it)
    from threadpoolctl import threadpool_info

    return {"blas": [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]}


def test_a_folder_jobs_workers_run_blas_on_their_own_threads(tmp_path, monkeypatch):
    """A worker set OMP_NUM_THREADS to its share after NumPy had loaded (importing saicm.codec.batch to find its
    initializer loads it), so its OpenBLAS kept a thread per CPU, and a one-thread worker's integer networks ran
    their float64 products on all of them: `--jobs 2` on two cores ran four BLAS threads."""
    from saicm.codec import batch

    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "SAICM_THREADS"):
        monkeypatch.delenv(name, raising=False)  # (the workers inherit the parent's: none, as a user's shell)
    monkeypatch.setattr(batch, "_worker_threads", lambda workers: 1)  # (each worker's share, whatever the CPUs)
    jobs = [batch.Job(tmp_path / f"{i}.png", tmp_path / f"{i}.saicm") for i in range(2)]
    outcomes = batch.run(_blas_threads, jobs, workers=2, progress=False)
    assert [o.error for o in outcomes] == [None, None]
    assert all(set(o.info["blas"]) <= {1} for o in outcomes), [o.info for o in outcomes]


def _its_pid(job):  # a folder job for the pool (module level: the workers import it)
    import time

    time.sleep(0.5)  # (long enough that the pool starts a worker for each file it is given at once)
    return {"pid": os.getpid()}


def test_a_folder_jobs_workers_are_bounded_by_the_cpus_and_oversubscription_is_said(tmp_path, monkeypatch):
    """`--jobs 1000` started a worker process per file (each holds its own model: hundreds of gigabytes for a large
    folder), and `--jobs 16` carried over to a two-CPU container said nothing of the cores the workers share."""
    import io

    from saicm.codec import batch
    from saicm.engine import parallel

    monkeypatch.delenv("SAICM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)  # one CPU
    monkeypatch.setattr(parallel, "cgroup_memory_limit", lambda *a: None)  # (a CI container's: the next test)
    jobs = [batch.Job(tmp_path / f"{i}.png", tmp_path / f"{i}.saicm") for i in range(8)]
    err = io.StringIO()
    outcomes = batch.run(_its_pid, jobs, workers=1000, progress=False, errors=err)
    assert [o.error for o in outcomes] == [None] * 8
    assert len({o.info["pid"] for o in outcomes}) <= 4  # four per CPU at most
    said = err.getvalue()
    assert "--jobs 1000 on 1 CPU: 4 worker processes of 1 thread each share the cores (no faster than --jobs 1" in said
    assert said.count("saicm: warning:") == 1 and "at most four processes per CPU" in said

    lines = []
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert batch._bounded_workers(2, 10, lines.append) == 2 and not lines  # a thread each: the cores, no more
    assert batch._bounded_workers(8, 3, lines.append) == 3 and "of 1 thread each" in lines.pop()  # (one per file)
    monkeypatch.setenv("SAICM_THREADS", "2")
    assert batch._bounded_workers(2, 10, lines.append) == 2 and "no faster than --jobs 1" in lines.pop()



def test_a_folder_jobs_workers_are_bounded_by_the_cgroups_memory_limit(tmp_path, monkeypatch):
    """`--jobs 4` in a container of 900 MB started four workers, each needing about 0.8 GB for a 12 MP photo: the
    kernel's OOM killer killed them in turn and two of four photos were not written, where the CPU quota was heeded
    and the memory limit was not. Workers are now one per WORKER_MEMORY of the limit, said in a warning."""
    import io

    from saicm.codec import batch
    from saicm.engine import parallel

    monkeypatch.delenv("SAICM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)  # four CPUs
    monkeypatch.setattr(parallel, "cgroup_cpu_limit", lambda *a: None)
    monkeypatch.setattr(batch, "WORKER_MEMORY", 1 << 20)  # (a small budget: the test needs no gigabytes)
    monkeypatch.setattr(parallel, "cgroup_memory_limit", lambda *a: (2 << 20) + 4096)  # room for two workers
    lines = []
    assert batch._bounded_workers(4, 10, lines.append) == 2
    said = lines.pop()
    assert "--jobs 4 in a memory limit of" in said and ": 2 worker processes, each of which may need" in said
    assert not lines
    monkeypatch.setattr(parallel, "cgroup_memory_limit", lambda *a: 1 << 19)  # below one worker's: one, not none
    assert batch._bounded_workers(4, 10, lines.append) == 1 and ": 1 worker process, each" in lines.pop()
    monkeypatch.setattr(parallel, "cgroup_memory_limit", lambda *a: None)  # no limit: the CPUs' bound alone
    assert batch._bounded_workers(4, 10, lines.append) == 4 and not lines
    monkeypatch.setattr(parallel, "cgroup_memory_limit", lambda *a: 64 << 20)  # a limit with room: said nothing
    assert batch._bounded_workers(4, 10, lines.append) == 4 and not lines

    monkeypatch.setattr(parallel, "cgroup_memory_limit", lambda *a: (2 << 20) + 4096)
    jobs = [batch.Job(tmp_path / f"{i}.png", tmp_path / f"{i}.saicm") for i in range(4)]
    err = io.StringIO()
    outcomes = batch.run(_its_pid, jobs, workers=4, progress=False, errors=err)
    assert [o.error for o in outcomes] == [None] * 4
    assert len({o.info["pid"] for o in outcomes}) <= 2
    assert err.getvalue().count("saicm: warning:") == 1 and "in a memory limit of" in err.getvalue()

def test_a_mask_folder_resumes_the_lines_of_any_system(tmp_path):
    """Manifest lines name images with '/' on every system; lines a Windows run wrote with backslashes are read as
    the same images, not written again."""
    from saicm.masks.job import MaskSpec, run_masks

    src = tmp_path / "imgs"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(np.full((32, 48, 3), 90, np.uint8)).save(src / "sub" / "x.png")

    def make(rgb, path):
        m = np.zeros(rgb.shape[:2], np.int32)
        m[8:24, 10:30] = 1
        return m, 2

    out = tmp_path / "masks"
    spec = MaskSpec(source="regions", settings={})
    run_masks(src, out, spec, make, progress=False)
    manifest = next(out.glob("manifest-*.jsonl"))
    line = json.loads(manifest.read_text())
    assert line["image"] == "sub/x.png" and line["mask"] == "sub/x.png"
    manifest.write_text(json.dumps(dict(line, image="sub\\x.png")) + "\n")  # as a Windows run wrote it
    summary = run_masks(src, out, spec, make, progress=False)
    assert summary["skipped"] == 1 and len(manifest.read_text().splitlines()) == 1
    # a backslash is a legal name character on Linux: such an image is listed once, not again on every resume
    Image.fromarray(np.full((32, 48, 3), 90, np.uint8)).save(src / "a\\b.png")
    run_masks(src, out, spec, make, progress=False)
    run_masks(src, out, spec, make, progress=False)
    assert len(manifest.read_text().splitlines()) == 2


def test_cache_folder_names_hold_no_character_windows_forbids():
    """``hevc:slow``, ``sa-nerv:masks=C:\\m``: ':' and '\\' are not allowed in Windows names, so those sweeps ran
    without a cache and SA-NeRV encodes could not resume. Linux keeps its names (hour-long cached encodes)."""
    from saicm.eval.cache import codec_key, folder_safe

    assert codec_key("sa-nerv:masks=C:\\m/x", {"a": 1}).startswith("sa-nerv:masks=C:\\m_x-")
    assert folder_safe("sa-nerv:masks=C:\\m/x", windows=True) == "sa-nerv_masks=C__m_x"
    assert not set('<>:"/\\|?*') & set(folder_safe('a<b>c:"d"/e\\f|g?h*', windows=True))


def test_the_tightest_cpu_quota_of_the_groups_above_counts(tmp_path):
    """A process's group and the groups above it may each set a quota: the smallest counts (each one caps the
    process); a period of 0 is no quota (not a ZeroDivisionError); a v1 controller line that is not ``cpu``'s (the
    ``cpuset`` hierarchy, elsewhere) names no group of the ``cpu`` hierarchy."""
    from saicm.engine.parallel import cgroup_cpu_limit

    tree = partial(_cgroup_tree, tmp_path)

    assert cgroup_cpu_limit(*tree("nested", "0::/a/b\n", {"a/cpu.max": "400000 100000\n",
                                                          "a/b/cpu.max": "200000 100000\n"})) == 2
    assert cgroup_cpu_limit(*tree("nested1", "0::/a/b\n", {"a/cpu.max": "200000 100000\n",
                                                           "a/b/cpu.max": "400000 100000\n"})) == 2
    assert cgroup_cpu_limit(*tree("period0", "0::/\n", {"cpu.max": "100000 0\n"})) is None
    assert cgroup_cpu_limit(*tree("cpuset", "5:cpuset:/batch\n4:cpu,cpuacct:/docker/x\n",
                                  {"cpu/batch/cpu.cfs_quota_us": "100000\n", "cpu/batch/cpu.cfs_period_us": "100000\n",
                                   "cpu/docker/x/cpu.cfs_quota_us": "300000\n",
                                   "cpu/docker/x/cpu.cfs_period_us": "100000\n"})) == 3


def test_saicm_threads_is_capped_at_four_per_cpu_and_a_bad_value_is_said_once(monkeypatch, recwarn):
    import warnings

    from saicm.engine import parallel

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(parallel, "cgroup_cpu_limit", lambda: None, raising=False)
    monkeypatch.setattr(parallel, "_said_ignored", set(), raising=False)
    monkeypatch.setenv("SAICM_THREADS", "99999")
    assert parallel.threads() == 8
    monkeypatch.setenv("SAICM_THREADS", "many")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        assert [parallel.threads() for _ in range(3)] == [2, 2, 2]
        assert parallel.requested_threads(say=False) is None
    assert len([w for w in said if "SAICM_THREADS='many'" in str(w.message)]) == 1, [str(w.message) for w in said]


def test_an_omp_thread_count_is_checked_in_each_of_its_levels_and_said_once(monkeypatch):
    """drop_invalid_omp_threads in process (mutation testing found these unasserted): every level of a list must be
    a count (``4,abc`` is dropped); a blank value is dropped unsaid; the warning comes once per process however many
    times it is asked for (the command line and threads() both ask); threads(say=False), as import saicm calls it,
    says nothing, of SAICM_THREADS either."""
    import warnings

    from saicm.engine import parallel

    monkeypatch.setattr(parallel, "_omp_dropped", None)
    monkeypatch.setattr(parallel, "_omp_said", False)
    monkeypatch.setattr(parallel, "_said_ignored", set())
    for value, kept in (("4,abc", False), ("abc,4", False), ("4,2", True), (" 3 ", True), ("+2", True)):
        monkeypatch.setenv("OMP_NUM_THREADS", value)
        parallel.drop_invalid_omp_threads()
        assert (os.environ.get("OMP_NUM_THREADS") == value) == kept, value
    assert parallel._omp_dropped == "abc,4"
    monkeypatch.setattr(parallel, "_omp_dropped", None)
    monkeypatch.setenv("OMP_NUM_THREADS", "  ")
    parallel.drop_invalid_omp_threads()
    assert "OMP_NUM_THREADS" not in os.environ and parallel._omp_dropped is None  # (blank: unset, unsaid)
    monkeypatch.setenv("OMP_NUM_THREADS", "0")
    parallel.drop_invalid_omp_threads()
    monkeypatch.setenv("SAICM_THREADS", "many")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        parallel.threads(say=False)
        assert said == []
        parallel.say_dropped_omp_threads()
        parallel.say_dropped_omp_threads()
        parallel.threads()
    omp = [str(w.message) for w in said if "OMP_NUM_THREADS" in str(w.message)]
    assert omp == ["OMP_NUM_THREADS='0' is not a whole number >= 1: ignored (the default, a thread per CPU, or "
                   "SAICM_THREADS)"], omp


def test_a_cgroup_memory_limit_with_room_for_exactly_the_workers_is_not_said(monkeypatch):
    """The memory bound lowers --jobs only when fewer workers fit than would run (mutation testing: a limit of room
    for exactly --jobs workers was not asserted)."""
    from saicm.codec import batch
    from saicm.engine import parallel

    monkeypatch.delenv("SAICM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(parallel, "cgroup_cpu_limit", lambda *a: None)
    monkeypatch.setattr(batch, "WORKER_MEMORY", 1 << 20)
    monkeypatch.setattr(parallel, "cgroup_memory_limit", lambda *a: 4 << 20)  # room for four, exactly
    lines = []
    assert batch._bounded_workers(4, 10, lines.append) == 4 and lines == []
    monkeypatch.setattr(parallel, "cgroup_memory_limit", lambda *a: (3 << 20) + (1 << 19))  # three and a half
    assert batch._bounded_workers(4, 10, lines.append) == 3 and ": 3 worker processes, each" in lines.pop()


def test_a_folder_jobs_workers_in_a_900_mib_cgroup_are_one(monkeypatch):
    """The case the memory bound was made for, at the real budget per worker (1 GiB: WORKER_MEMORY's
    measurements): --jobs 4 in 900 MiB is one worker, in 2.5 GiB two (mutation testing: every test set its own
    budget)."""
    from saicm.codec import batch
    from saicm.engine import parallel

    monkeypatch.delenv("SAICM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(parallel, "cgroup_cpu_limit", lambda *a: None)
    lines = []
    monkeypatch.setattr(parallel, "cgroup_memory_limit", lambda *a: 900 << 20)
    assert batch._bounded_workers(4, 10, lines.append) == 1
    assert "in a memory limit of 900 MiB (the cgroup's" in lines.pop() and not lines
    monkeypatch.setattr(parallel, "cgroup_memory_limit", lambda *a: 5 << 29)
    assert batch._bounded_workers(4, 10, lines.append) == 2
    said = lines.pop()
    assert "in a memory limit of 2.5 GiB (the cgroup's" in said and "about 1.0 GiB (its model" in said
