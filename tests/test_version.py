"""`saicm --version` prints the version pyproject.toml declares, without loading PyTorch."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import saicm
from saicm.cli import main

ROOT = Path(__file__).resolve().parent.parent


def _pyproject_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_version_flag_prints_the_pyproject_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"saicm {_pyproject_version()}"
    assert saicm.__version__ == _pyproject_version()


def test_version_flag_does_not_import_torch():
    code = ("import sys\nfrom saicm.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip().splitlines() == [f"saicm {_pyproject_version()}", "False"]


def test_readme_and_changelog_name_the_current_version():
    # the README said 0.4.0 while the package was 0.5.0
    v = _pyproject_version()
    assert f"Version {v}," in (ROOT / "README.md").read_text()
    assert f"## [{v}] - " in (ROOT / "CHANGELOG.md").read_text()


def test_the_citation_file_names_the_current_version_and_its_date():
    v = _pyproject_version()
    date = re.search(rf"^## \[{re.escape(v)}\] - (\S+)", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE).group(1)
    cff = (ROOT / "CITATION.cff").read_text()
    assert re.search(r"^version: (\S+)$", cff, re.MULTILINE).group(1) == v
    assert re.search(r"^date-released: (\S+)$", cff, re.MULTILINE).group(1) == date


def test_the_package_metadata_says_it_ships_type_information():
    """saicm/py.typed ships in the wheel (PEP 561), but the classifiers did not say so: PyPI's 'Typing :: Typed'
    filter, and readers of the metadata, did not find saicm among typed packages (release audit)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert (ROOT / "saicm" / "py.typed").is_file()
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["saicm"]
    assert "Typing :: Typed" in project["project"]["classifiers"]


def test_every_test_the_coding_only_run_names_exists():
    """``make test-oldest`` hands pytest the node IDs of .ci/coding-only-tests.txt; one test's parameters were
    renamed (test_bad_preset_is_a_user_error[hevc:warp] became [hevc:warp-unknown hevc preset 'warp']) and pytest
    stopped at 'not found' before running any: the coding-only install's tests had not run since (install audit)."""
    ids = [line.strip() for line in (ROOT / ".ci" / "coding-only-tests.txt").read_text().splitlines()
           if line.strip() and not line.startswith("#")]
    r = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *ids],
                       capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, "\n".join(line for line in (r.stdout + r.stderr).splitlines()
                                        if "not found" in line) or r.stdout[-2000:] + r.stderr[-2000:]
    assert len([line for line in r.stdout.splitlines() if "::" in line]) >= len(ids)  # (a name: all its parameters)


def test_the_pillow_bound_admits_no_release_with_advisories_in_what_saicm_reads():
    """pyproject.toml allowed Pillow 10.1 on, and .ci/constraints-oldest.txt tested 10.1.0: releases before 12.3.0
    have advisories (2026) in code saicm runs on images from strangers: the ICC profile transform of the colour-profile
    warning (an out-of-bounds access in ImageCms' transform), JPEG 2000's memory use, and (before saicm read a file only
    as the formats its name allows) PSD's out-of-bounds write (10.3–12.1.0), McIdas' out-of-bounds read, FITS' and
    EPS' bombs and loops. The bound and the oldest tested release say 12.3 (security-scan audit)."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    bound = [d for d in deps if re.match(r"pillow\b", d, re.I)]
    assert bound == ["pillow>=12.3"]
    oldest = (ROOT / ".ci" / "constraints-oldest.txt").read_text()
    assert re.search(r"^pillow==12\.3\.0\b", oldest, re.M)


def _section(version: str) -> str:
    text = (ROOT / "CHANGELOG.md").read_text()
    start = text.index(f"## [{version}] - ")
    end = text.index("\n## [", start + 1)
    return text[start:end]


def test_released_sections_amended_after_their_version_commit_say_so():
    """[0.20.0], [0.30.0] and [0.32.0] list features from commits after the one that made the version (still saying that
    version): `saicm strip FOLDER`, `machine_sha256_prefix`, the `--log` `time` field (0.30.0's version commit has none
    of them), `pseudo_min_score` (0.32.0's). A pinning user read them as the version's; a correction note says which
    (semver audit). docs/scalable.md dated `machine_sha256_prefix` 0.30.0 too."""
    s30 = _section("0.30.0")
    assert s30.split("\n", 2)[2].startswith("**Correction")
    for feature in ("saicm strip FOLDER", "machine_sha256_prefix", "`time` field", "require 0.31.0"):
        assert feature in s30.split("\n\n", 2)[1], feature
    s20 = _section("0.20.0")
    assert s20.split("\n", 2)[2].startswith("**Correction") and "require 0.21.0" in s20.split("\n\n", 2)[1]
    s32 = _section("0.32.0")
    assert s32.split("\n", 2)[2].startswith("**Correction")
    assert "pseudo_min_score" in s32.split("\n\n", 2)[1]
    scalable = (ROOT / "docs" / "scalable.md").read_text()
    assert "`machine_sha256_prefix`, since 0.30.0" not in scalable
    assert "`machine_sha256_prefix`, since 0.31.0" in scalable


@pytest.mark.skipif(subprocess.run(["git", "--version"], capture_output=True).returncode != 0, reason="needs git")
def test_the_commit_is_read_without_taking_the_checkouts_index_lock(tmp_path):
    """Reading the commit of a checkout ran `git status`, which refreshed the index under `.git/index.lock`: a
    `git commit` there while a saicm command started failed on the lock ("File exists"), and a `git status` killed
    at its timeout left the lock for good (disk audit). The index is now left as it is."""
    import os
    import time

    from saicm._provenance import source_commit

    repo = tmp_path / "checkout"
    (repo / "saicm").mkdir(parents=True)
    (repo / "saicm" / "x.py").write_text("a = 1\n")
    git = ["git", "-C", str(repo), "-c", "user.email=a@b", "-c", "user.name=a"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "x"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    later = time.time_ns() + 5 * 10**9  # (a source touched since the index was written: git would refresh it)
    os.utime(repo / "saicm" / "x.py", ns=(later, later))
    (repo / "saicm" / "untracked.py").write_text("b = 2\n")  # (not saicm's sources: not dirty)
    index = os.stat(repo / ".git" / "index")
    got = source_commit.__wrapped__(repo)
    assert len(got["commit"]) == 40 and got["dirty"] is False
    after = os.stat(repo / ".git" / "index")
    assert (after.st_ino, after.st_mtime_ns) == (index.st_ino, index.st_mtime_ns)


def test_a_deprecation_warning_of_saicms_or_the_tests_own_code_fails_the_test():
    """pyproject's filterwarnings: a deprecated API used by saicm's or the tests' own code (the warning attributed to
    it) fails the test, other libraries' warnings from their own code stay hidden (review of the unreleased filter:
    its "error" lines could be dropped, the blanket "ignore" back alone, with no test failing)."""
    import warnings

    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        for module in ("saicm.codec.image_io", "tests.test_version"):
            with pytest.raises(category):
                warnings.warn_explicit("old", category, "x.py", 1, module=module)
    for category in (DeprecationWarning, FutureWarning):  # (another library's: hidden; "saicm" is not a prefix)
        for module in ("PIL.Image", "saicmlike"):
            warnings.warn_explicit("old", category, "x.py", 1, module=module)
