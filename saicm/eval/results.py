"""The one results schema (JSON) every evaluation writes and every consumer reads.

::

    {
      "schema": "saicm-results/1",
      "codec": "jpeg", "codec_config": {...},
      "dataset": "path", "num_images": 24, "task": "psnr",
      "points": [{"quality": 50, "bpp": 0.81, "psnr": 31.2, "encode_s": 0.01,
                  "decode_s": 0.005, "bytes": 123456}, ...],       # ascending bpp
      "reference": {...},          # task metrics on uncompressed images (if any)
      "per_image": {"name.png": [{"quality": .., "bpp": .., "psnr": ..}, ...]},
      "created": "ISO time", "saicm_version": "0.2.0",
      "software": {"saicm": "0.2.0", "commit": "…", "python": "3.11.7", "torch": "…", …},
      "machine": {"cpu": "AMD EPYC …", "cpus": 2, "threads": 2, "OMP_NUM_THREADS": "1"},
      "dataset_sha256": "…",       # image folders: sorted names and decoded pixels (saicm.eval.rd)
      "bootstrap": {"replicates": 200, "seed": 0, "images": "sha256 prefix of the sorted names"}
    }

``bpp`` is the mean over images of 8·bytes/pixels of the real encoded bytes;
``psnr`` the mean over images of RGB PSNR in dB. Image sweeps count
``timings_from_cache`` and ``decodes_from_other_versions`` (cached decodes
made by another saicm version; docs/evaluation.md). Detection and instance
results evaluated with ``--bootstrap N`` carry ``bootstrap`` (what fixes the
draws) and, in each point and the reference, ``"bootstrap": {"box_ap": [N
values], "box_ap50": [...], ...}``: the AP on each draw of the images
(:mod:`saicm.eval.bootstrap`).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from pathlib import Path, PurePath

from .._fs import remove_stale_parts, write_bytes_atomic
from ..errors import SaicmError

SCHEMA = "saicm-results/1"


def new_result(codec: str, codec_config: dict, dataset: str, task: str, num_images: int) -> dict:
    from .. import __version__
    from .._provenance import machine, software

    return {
        "schema": SCHEMA,
        "codec": codec,
        "codec_config": codec_config,
        "dataset": dataset,
        "num_images": num_images,
        "task": task,
        "points": [],
        "reference": {},
        "per_image": {},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "saicm_version": __version__,
        "software": software(),  # (the commit and libraries beside the version; saicm.eval.rd adds dataset_sha256)
        "machine": machine(),  # (what encode_s and decode_s ran on: they said nothing of the CPU or threads)
    }


def save(result: dict, path: str | Path) -> None:
    """Write ``result`` to the file ``path`` (atomically; its ``points`` are sorted by bpp first, in place) as
    standard JSON: a value that was not measured (NaN: MS-SSIM of an image of 160 pixels or less a side) is
    ``null``, as JSON has no NaN; readers take ``null`` for "not measured". The temporary files of earlier writers
    of ``path`` that were killed (``kill -9`` during a write: ``.NAME.XXXX.part.json``, hidden beside it) are removed
    first: nothing else ever did."""
    result["points"].sort(key=lambda p: p["bpp"])
    text = json.dumps(_nan_to_null(result), indent=1, allow_nan=False)
    remove_stale_parts(path)
    write_bytes_atomic(path, (text + "\n").encode())


def _nan_to_null(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _nan_to_null(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_nan_to_null(x) for x in v]
    return v


class _DuplicateKey(Exception):
    """A key given twice in one JSON object (not a ValueError: that is "not JSON")."""


def _no_duplicate_keys(pairs: list) -> dict:
    d = dict(pairs)
    if len(d) != len(pairs):
        seen = set()
        raise _DuplicateKey(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return d


def _finite_or_none(text: str) -> float | None:
    v = float(text)
    return v if math.isfinite(v) else None


def load(path: str | Path) -> dict:
    """The results dict of the JSON file at ``path`` (what :func:`save` writes; CompressAI's eval JSON is
    converted), checked (a :class:`~saicm.errors.SaicmError` names the file otherwise); NaN and ±Infinity (older
    files) are read as None."""
    from .._fs import read_input
    from ..codec.container import not_a

    data = read_input(path)  # ("no such file", "is a folder, not a file", as every command says them)
    try:
        # NaN and ±Infinity (not JSON, but what saicm wrote before 0.17.0 for a value not measured: MS-SSIM of small
        # images, the PSNR of an exact decode; 1e999 too) are read as the null that save() writes for them today
        d = json.loads(data.decode("utf-8-sig"), parse_constant=lambda _: None, parse_float=_finite_or_none,
                       object_pairs_hook=_no_duplicate_keys)
    except _DuplicateKey as e:
        raise SaicmError(f"corrupt results (the key {_shown(e.args[0])} is given twice in one object: JSON readers "
                         "disagree on which one is meant, Python's the last, others the first; saicm writes no such "
                         "file)", str(path)) from None
    except ValueError:  # (not UTF-8, or not JSON: an image, a .saicm file, a model given by mistake)
        raise SaicmError(not_a("a results file (the JSON saicm eval writes)", data, advise=False)
                         or "not a results file (not JSON; saicm eval writes them)", str(path)) from None
    except RecursionError:  # (nested past Python's limit: not a file saicm wrote)
        raise SaicmError("cannot read results (nested too deeply)", str(path)) from None
    if _is_compressai_eval(d):
        d = _from_compressai_eval(d, path)
    if not isinstance(d, dict) or d.get("schema") != SCHEMA:
        raise SaicmError(_not_this_schema(d), str(path))
    points = d.get("points")
    if not isinstance(d.get("codec"), str) or not isinstance(points, list):
        raise SaicmError("corrupt results (a codec name and a list of points are required)", str(path))
    for p in points:
        if not isinstance(p, dict) or not _finite(p.get("bpp")) or not p["bpp"] > 0:
            raise SaicmError("corrupt results (every point needs a positive, finite bpp)", str(path))
    for i, p in enumerate(points, 1):  # (a string "31.2" was refused by codec name at plot time, not file and field)
        _check_numbers(p, f"point {i}", path)
        _check_extras(p, f"point {i}", path)
    points.sort(key=lambda p: p["bpp"])  # (as save() writes them: a hand-made file's curve was drawn in file order,
    # a zigzag back and forth along the rate axis, and its table of values listed them so)
    if d.get("reference") is None:
        d["reference"] = {}  # (null: none measured)
    if not isinstance(d.get("reference"), dict):
        raise SaicmError("corrupt results (reference is not an object of metric values)", str(path))
    _check_numbers(d["reference"], "reference", path)  # (a string drew the plot's metric axis as categories)
    _check_extras(d["reference"], "reference", path)
    per_image = d.get("per_image", {})
    if not isinstance(per_image, dict) or not all(
            isinstance(v, list) and all(isinstance(e, dict) and _integer(e.get("quality")) for e in v)
            for v in per_image.values()):
        raise SaicmError("corrupt results (per_image maps each image name to a list of entries with a quality)",
                         str(path))
    if per_image and not all(_integer(p.get("quality")) for p in points):
        raise SaicmError("corrupt results (per_image values are matched to points by quality: every point needs "
                         "a whole-number one)", str(path))
    for name, entries in per_image.items():  # (read by bdrate --ci: a string or 1e400 written as digits was a
        for e in entries:                    # ValueError or OverflowError traceback)
            if not _all_finite(e):  # (the words made for a bad entry alone: a large file has tens of thousands)
                _check_numbers(e, f"per_image {_shown(name)} at quality {e['quality']}", path)
    boot = d.get("bootstrap")
    if boot is not None and not (isinstance(boot, dict) and _integer(boot.get("replicates"))
                                 and 1 <= boot["replicates"] <= MAX_REPLICATES
                                 and _integer(boot.get("seed", 0)) and 0 <= boot.get("seed", 0) < 2 ** 63):
        raise SaicmError(f"corrupt results (bootstrap needs a whole number of replicates, 1..{MAX_REPLICATES:,}, and "
                         "a seed of 0 or more)", str(path))
    if d.get("num_images") is not None and not _integer(d["num_images"]):
        raise SaicmError("corrupt results (num_images is not a whole number)", str(path))
    return d


#: CompressAI's eval JSON (``python -m compressai.utils.eval_model`` or ``compressai.utils.bench``): its lists
#: under "results" and the point fields they become (where two become one field, the first listed is read)
COMPRESSAI_FIELDS = {"bpp": "bpp", "psnr-rgb": "psnr", "psnr": "psnr", "ms-ssim-rgb": "ms_ssim", "ms-ssim": "ms_ssim",
                     "encoding_time": "encode_s", "decoding_time": "decode_s"}


def _is_compressai_eval(d) -> bool:
    return (isinstance(d, dict) and "schema" not in d and "points" not in d and isinstance(d.get("results"), dict)
            and isinstance(d["results"].get("bpp"), list))


def _from_compressai_eval(d: dict, path) -> dict:
    """CompressAI's eval JSON (``{"name", "description", "results": {"bpp": [...], "psnr-rgb": [...], ...}}``, one
    list entry per rate point) as a results file of this schema: codec = its ``name``, task ``psnr``, one point per
    entry. Its per-image files are not read (no ``--ci``)."""
    r = d["results"]
    n = len(r["bpp"])
    lists: dict = {}
    for k, field in COMPRESSAI_FIELDS.items():  # (both "psnr-rgb" and "psnr": the RGB one, as saicm measures, first)
        if k in r:
            lists.setdefault(field, r[k])
    wrong = [k for k, v in r.items() if k in COMPRESSAI_FIELDS and not (isinstance(v, list) and len(v) == n)]
    if wrong or not n:
        raise SaicmError(f"corrupt CompressAI results ({wrong[0] if wrong else 'bpp'}: not a list of one value per "
                         "rate point, as long as bpp)", str(path))
    name = d.get("name")
    return {"schema": SCHEMA, "codec": name if isinstance(name, str) and name else Path(str(path)).stem,
            "codec_config": {"source": "CompressAI eval JSON", "description": d.get("description")},
            "task": "psnr", "points": sorted(({k: v[i] for k, v in lists.items()} for i in range(n)),
                                             key=lambda p: p["bpp"] if _number(p["bpp"]) else 0),
            "reference": {}, "per_image": {}}


def _not_this_schema(d) -> str:
    """Why ``d`` is not a results file this saicm reads: another version of the schema (a newer saicm's files were
    called "not the results JSON saicm eval writes"), a ``bdrate --json`` table, or something else."""
    schema = d.get("schema") if isinstance(d, dict) else None
    if isinstance(schema, str) and schema.startswith("saicm-results/") and schema != SCHEMA:
        from .. import __version__

        by = d.get("saicm_version")
        by = f"saicm {by}" if isinstance(by, str) and len(by) < 40 else "another saicm"
        return (f"results schema {schema!r} (written by {by}); saicm {__version__} reads {SCHEMA} only: "
                "read it with the saicm that wrote it, or a newer one")
    if isinstance(d, dict) and "rows" in d and "anchor" in d:
        return f"a BD-rate table (saicm bdrate --json), not a {SCHEMA} results file (the JSON saicm eval writes)"
    if isinstance(d, dict) and "schema" not in d and "points" in d:
        return f"no \"schema\" field: not a {SCHEMA} file (the results JSON saicm eval writes; docs/evaluation.md)"
    return f"not a {SCHEMA} file (the results JSON saicm eval writes)"


#: the most bootstrap draws a results file may ask for (saicm eval --bootstrap's 200 by default; 10^11 asked for a
#: 1.46 TiB array, 10^6 ran for minutes)
MAX_REPLICATES = 100_000


#: the fields of a point and of the reference that hold a number (or null: not measured)
NUMBER_FIELDS = ("bpp", "bytes", "psnr", "ms_ssim", "encode_s", "decode_s", "ap", "ap50", "box_ap", "box_ap50",
                 "mask_ap", "mask_ap50", "face_retention", "faces_on_originals")


#: number fields of a point that are not a score: a BD-rate on them (``saicm bdrate --metric bytes``) is a number
#: with no meaning (the rate against itself, JPEG's quality scale against a model's, the coding time)
NOT_SCORES = ("bpp", "bytes", "quality", "encode_s", "decode_s")
_NUMBER_FIELDS = frozenset(NUMBER_FIELDS)


def _shown(v) -> str:
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def _check_numbers(entry: dict, where: str, path) -> None:
    for k in NUMBER_FIELDS:
        v = entry.get(k)
        if v is not None and not _finite(v):
            raise SaicmError(f"corrupt results ({where}: {k!r} is {_shown(v)}, not a finite number or null)",
                             str(path))


def _all_finite(entry: dict) -> bool:
    """Whether :func:`_check_numbers` passes ``entry``, quickly (it is asked of every per-image entry: they made
    loading a large results file a third slower): floats and ints that a float holds pass without a call."""
    for k, v in entry.items():
        t = type(v)
        if t is float:
            if v - v == 0:  # (not for inf or nan)
                continue
        elif t is int:
            if -1e308 < v < 1e308:  # (exact: an int of any size compares with a float)
                continue
        elif v is None:
            continue
        if k in _NUMBER_FIELDS and not _finite(v):
            return False
    return True


def _check_extras(entry: dict, where: str, path) -> None:
    """The fields beside the numbers that plot, bdrate and report read: ``ground_truth`` (a string; a list was a
    TypeError traceback: unhashable) and stored ``bootstrap`` draws (lists of numbers or null)."""
    gt = entry.get("ground_truth")
    if gt is not None and not isinstance(gt, str):
        raise SaicmError(f"corrupt results ({where}: 'ground_truth' is {_shown(gt)}, not a string)", str(path))
    boot = entry.get("bootstrap")
    if boot is not None and not (isinstance(boot, dict) and all(
            isinstance(v, list) and all(x is None or (x - x == 0 if type(x) is float else _finite(x)) for x in v)
            for v in boot.values())):  # (floats without a call: a detection file's points hold thousands of draws)
        raise SaicmError(f"corrupt results ({where}: 'bootstrap' is not an object of lists of numbers or null)",
                         str(path))


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _finite(v) -> bool:
    """A number that a float holds finitely: JSON's whole numbers are read as Python ints of any size, and
    ``math.isfinite(10**400)`` raised OverflowError (a traceback from plot, bdrate and report)."""
    try:
        return _number(v) and math.isfinite(v)
    except OverflowError:
        return False


def _integer(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def curve(result: dict, metric: str) -> tuple[list[float], list[float]]:
    """(rates, values) of the points that measured ``metric``; ``null`` (not measured: an exact decode's PSNR,
    MS-SSIM of a tiny image) leaves the point out."""
    pts = [p for p in result["points"] if metric in p]
    if not pts:
        raise SaicmError(f"results for {result['codec']} have no metric {metric!r}")
    if not all(p[metric] is None or (_number(p[metric]) and math.isfinite(p[metric])) for p in pts):
        raise SaicmError(f"results for {result['codec']}: {metric!r} is not a finite number (or null) at every point")
    pts = [p for p in pts if p[metric] is not None]
    if not pts:
        raise SaicmError(f"results for {result['codec']}: {metric!r} was not measured at any point (null)")
    return [p["bpp"] for p in pts], [p[metric] for p in pts]


def left_out(result: dict, metric: str) -> list[float]:
    """The rates of the points :func:`curve` leaves out of ``metric``'s curve (null or absent there: an exact
    decode's PSNR, MS-SSIM of tiny images), when ``result`` measured ``metric`` at some point; plots, tables and
    BD-rates say so (they dropped them unsaid: a stranger's file with a point fewer read as a whole curve)."""
    if not any(p.get(metric) is not None for p in result["points"]):
        return []
    return [p["bpp"] for p in result["points"] if p.get(metric) is None]


def left_out_words(result: dict, metric: str, whose: str = "") -> str:
    """:func:`left_out` in words ("" when none): "2 points without a psnr value (null) left out, at 1.6000 and
    2.4000 bpp"."""
    rates = left_out(result, metric)
    if not rates:
        return ""
    at = ", ".join(f"{b:.4f}" for b in rates[:4]) + (f" and {len(rates) - 4} more" if len(rates) > 4 else "")
    n = f"{len(rates)} point{'s' if len(rates) > 1 else ''}"
    return f"{whose}{n} without a {metric} value (null) left out, at {at} bpp"


#: what identifies a measurement besides the codec's seed: runs averaged by :func:`mean_of_runs` must agree on these
_SAME_FOR_RUNS = ("dataset", "task", "task_model", "bootstrap", "num_images")


def _same_measure(key: str, value):
    """What must agree between runs to be averaged. Files are named by their last path component: the same clip
    (``clip.avi#0:30``) or detector (``yolox:yolox_nano.onnx``) given by a relative path on one run and by an
    absolute one on another is one measurement (the image names are compared as well; a clip's
    ``#frames@size`` part must agree)."""
    if not isinstance(value, str):
        return value
    if key == "dataset":
        path, sep, rest = value.partition("#")
        return PurePath(path.rstrip("/\\")).name + sep + rest
    if key == "task_model":
        kind, sep, path = value.partition(":")
        return kind + sep + PurePath(path).name if sep else value
    return value


#: metrics scored against ground truth, official (labels) or pseudo (the task model on the originals)
GROUND_TRUTH_METRICS = ("ap", "ap50", "box_ap", "box_ap50", "mask_ap", "mask_ap50")


def ground_truths(result: dict, metric: str) -> set[str]:
    """What ``metric`` was scored against in ``result``: ``{"official"}``, ``{"pseudo"}`` (the task model's own
    detections on the originals), both, or empty (a metric scored against nothing: PSNR, MS-SSIM; a detection
    run's points carry ``ground_truth`` for their AP, which said the PSNR beside it was scored against it too)."""
    if metric not in GROUND_TRUTH_METRICS:
        return set()
    return {p["ground_truth"] for p in result["points"] if p.get(metric) is not None and p.get("ground_truth")}


def estimated_rates(result: dict) -> bool:
    """Whether ``result``'s rates were estimated, not coded: CompressAI's eval JSON from ``eval_model
    --entropy-estimation`` (its description says "Inference (entropy estimation)"), whose bpp is the entropy
    model's estimate of the latents, no file's size."""
    cfg = result.get("codec_config")
    desc = cfg.get("description") if isinstance(cfg, dict) and cfg.get("source") == "CompressAI eval JSON" else None
    return isinstance(desc, str) and "entropy estimation" in desc.lower()


#: what is said of a result whose rates are estimated (:func:`estimated_rates`)
ESTIMATED = "rates estimated by CompressAI's entropy model (eval_model --entropy-estimation), not coded"


def row_notes(anchor: dict, test: dict, metric: str, r, narrowed: bool = False) -> list[str]:
    """What a BD-rate row says besides its figure, in the words of ``saicm bdrate`` and ``saicm report`` alike (each
    built its own, and their words had parted): the points ``r`` (a :class:`~saicm.eval.bdrate.BDRate`) dropped, each
    curve's points left out for a null value, warnings of other images and of unlike measurements, and of an overlap
    under half of both ranges (not when ``narrowed``: an interval asked for)."""
    from .bdrate import dropped_points

    notes = [f"dropped non-monotone points: {len(r.dropped)}: {dropped_points(r.dropped)}"] if r.dropped else []
    notes += [said for whose, res in (("the anchor's ", anchor), ("the test's ", test))
              if (said := left_out_words(res, metric, whose))]
    other = other_images(anchor, test)
    notes += [f"WARNING: {other}"] if other else []  # (--ci refuses such a pair; a plain BD-rate says so)
    notes += [f"WARNING: {why}: not comparable" for why in comparison_warnings(anchor, test, metric)]
    if max(r.coverage) < 0.5 and not narrowed:
        notes.append("WARNING: the overlap covers under half of both curves' ranges: a narrow comparison")
    return notes


def comparison_warnings(anchor: dict, test: dict, metric: str) -> list[str]:
    """Why a BD-rate of ``test`` against ``anchor`` on ``metric`` compares unlike measurements: estimated rates
    against coded ones (:func:`estimated_rates`), AP against other
    ground truth (pseudo against official labels), or read by another task model (a pseudo ground truth is that
    model's own: two models' are two answer keys). Empty when nothing is known to differ."""
    out = []
    if estimated_rates(anchor) != estimated_rates(test):  # (a coded file's bits against an estimate of them)
        whose = "its" if estimated_rates(test) else "the anchor's"
        out.append(f"{whose} {ESTIMATED}")
    a, t = ground_truths(anchor, metric), ground_truths(test, metric)
    if a and t and a != t:
        out.append(f"AP against other ground truth than the anchor's ({'/'.join(sorted(t))} vs {'/'.join(sorted(a))})")
    am, tm = anchor.get("task_model"), test.get("task_model")
    if (a or t) and am and tm and _same_measure("task_model", am) != _same_measure("task_model", tm):
        out.append(f"another task model than the anchor's ({tm} vs {am})")
    elif (a or t) and isinstance(ah := anchor.get("task_model_sha256"), str) \
            and isinstance(th := test.get("task_model_sha256"), str) and ah != th:
        out.append("another task model than the anchor's under the same name (task_model_sha256 differs)")
    af, tf = anchor.get("dataset_sha256"), test.get("dataset_sha256")
    if (isinstance(af, str) and isinstance(tf, str) and af != tf
            and set(anchor.get("per_image") or ()) == set(test.get("per_image") or ())):  # (other names: said apart)
        out.append("other pictures than the anchor's under the same names (dataset_sha256 differs)")
    return out


def other_images(anchor: dict, test: dict) -> str | None:
    """Why ``test`` was not measured on the anchor's images (names in ``per_image``: a folder that gained or lost
    images between the two runs), or None (the same names, or a file without per-image entries)."""
    a, t = set(anchor.get("per_image") or ()), set(test.get("per_image") or ())
    if a and t and a != t:
        return f"other images than the anchor's: {len(t)} vs {len(a)}, {len(a & t)} shared"
    return None


def same_names(runs, what: str = "rows and the anchor") -> list[str]:
    """One warning per codec name that more than one of ``runs`` carries (``what``: what cannot then be told apart).
    Runs of one codec kept from two saicm versions or two data sets name it alike (``photos-test_jpeg.json`` and
    ``photos-test-small12_jpeg.json`` both say ``jpeg``)."""
    from collections import Counter

    return [f"{n} of these results name their codec {name!r}: {what} cannot be told apart by name (rename the "
            "codec in one file: its 'codec' field)"
            for name, n in Counter(r["codec"] for r in runs).items() if n > 1]


def _common_name(names: list[str]) -> str:
    """``nerv:epochs=150,seed=1`` and ``nerv:epochs=150,seed=2`` -> ``nerv:epochs=150``: the options all share."""
    heads = {n.partition(":")[0] for n in names}
    if len(heads) > 1:
        return " | ".join(names)
    opts = [n.partition(":")[2].split(",") for n in names]
    common = [o for o in opts[0] if o and all(o in other for other in opts[1:])]
    return names[0].partition(":")[0] + (":" + ",".join(common) if common else "")


#: seed of the run resampling of :func:`mean_of_runs` (fixed: two codecs averaged alike are resampled alike)
RUN_RESAMPLE_SEED = 20261203


def mean_of_runs(runs: list[dict], resample_runs: bool = False) -> dict:
    """One result holding, per rate point, the mean over ``runs`` (the same codec trained with different seeds).

    Bytes, bpp and every metric are averaged point by point (points matched by quality) and image by image;
    stored bootstrap draws of AP are averaged draw by draw, which is valid because every run was drawn with
    the same images and seed (checked): draw b of the mean is the mean AP over seeds on draw b. So a paired
    bootstrap of the mean against another codec resamples images (frames) with the seeds held fixed; it says
    nothing of the spread between seeds, which the caller reports from the runs themselves.

    ``resample_runs``: draw b of the mean is instead the mean AP on draw b over a resample of the runs with
    replacement (the same resample at every rate point of draw b), so the interval of a BD-rate covers the
    spread between seeds as well as the choice of images. The resamples are a fixed function of the number of
    runs and draws (:data:`RUN_RESAMPLE_SEED`): two codecs averaged this way over the same number of runs, given
    in the same seed order, draw the same seeds together (run i of one with run i of the other).
    The points themselves stay the plain means.
    """
    if len(runs) < 2:
        raise SaicmError("averaging needs at least two results files")
    first = runs[0]
    for r in runs[1:]:
        for k in _SAME_FOR_RUNS:
            if _same_measure(k, r.get(k)) != _same_measure(k, first.get(k)):
                raise SaicmError(f"{r['codec']} and {first['codec']} differ in {k} "
                                 f"({r.get(k)!r} vs {first.get(k)!r}): only runs of one measurement can be averaged")
        if sorted(r["per_image"]) != sorted(first["per_image"]):
            raise SaicmError(f"{r['codec']} and {first['codec']} were measured on different images")
    qualities = [sorted(str(p["quality"]) for p in r["points"]) for r in runs]
    if any(q != qualities[0] for q in qualities):
        raise SaicmError(f"the runs have different rate points: {qualities}")

    picks = None
    if resample_runs:
        import numpy as np

        n_draws = int((first.get("bootstrap") or {}).get("replicates") or 0)
        if not n_draws:
            raise SaicmError("resampling the runs needs stored bootstrap draws (saicm eval --bootstrap N)")
        rng = np.random.default_rng(RUN_RESAMPLE_SEED)
        picks = rng.integers(0, len(runs), size=(n_draws, len(runs))).tolist()

    def draw_mean(entries: list[dict], k: str, name: str, i: int) -> float | None:
        chosen = entries if picks is None else [entries[j] for j in picks[i]]
        values = [e[k][name][i] for e in chosen]
        return None if any(v is None for v in values) else sum(values) / len(values)

    def mean_entry(entries: list[dict]) -> dict:
        out = dict(entries[0])
        for k, v in entries[0].items():
            if isinstance(v, bool) or k == "quality":
                continue
            if isinstance(v, (int, float)) and all(isinstance(e.get(k), (int, float)) for e in entries):
                out[k] = sum(e[k] for e in entries) / len(entries)
            elif k == "bootstrap" and isinstance(v, dict):
                out[k] = {name: [draw_mean(entries, k, name, i) for i in range(len(draws))]
                          for name, draws in v.items()
                          if all(len(e[k].get(name) or []) == len(draws) for e in entries)
                          and (picks is None or len(draws) == len(picks))}
            elif k == "per_clip":
                out[k] = {c: mean_entry([e[k][c] for e in entries]) for c in v}
        return out

    def by_quality(entries: list[dict]) -> dict:
        return {str(e["quality"]): e for e in entries}

    res = dict(first)
    res["codec"] = f"{_common_name([r['codec'] for r in runs])} (mean of {len(runs)} runs" + \
        (", runs resampled)" if resample_runs else ")")
    res["codec_config"] = {"mean_of": [{"codec": r["codec"], **r.get("codec_config", {})} for r in runs]}
    res["points"] = [mean_entry([by_quality(r["points"])[q] for r in runs]) for q in qualities[0]]
    res["per_image"] = {name: [mean_entry([by_quality(r["per_image"][name])[str(e["quality"])] for r in runs])
                               for e in entries]
                        for name, entries in first["per_image"].items()}
    res["points"].sort(key=lambda p: p["bpp"])
    return res
