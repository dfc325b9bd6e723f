"""Privacy at a task-preserving rate: how many faces survive where detection still works.

The question of the SA-ICM issue: at the rate where a codec keeps a given
share (90 %) of the uncompressed detection AP, what share of faces does a face
detector still find, for that codec and for others at the same rate?

Detection AP is measured on one set (COCO128, official labels) and faces on
another (the photo test split), so the operating point is carried across by
the codec's rate-point position: find where (between which two rate points, at
which fraction) the anchor's AP curve crosses the threshold, take the anchor's
bpp on the face set at the same position, and read every codec's face
retention at that bpp (linear interpolation in log-rate; ``None`` outside a
curve's range, never extrapolated).
"""

from __future__ import annotations

import math

from ..errors import SaicmError


def _sorted_points(result: dict, metric: str) -> list[dict]:
    pts = sorted((p for p in result["points"] if metric in p), key=lambda p: p["bpp"])
    if not pts:
        raise SaicmError(f"results for {result['codec']} have no metric {metric!r}")
    return pts


def value_at_rate(result: dict, metric: str, bpp: float) -> float | None:
    """``metric`` at ``bpp``, interpolated linearly in log-rate; None outside the measured range."""
    pts = _sorted_points(result, metric)
    for a, b in zip(pts, pts[1:]):
        if a["bpp"] <= bpp <= b["bpp"]:
            t = (math.log(bpp) - math.log(a["bpp"])) / (math.log(b["bpp"]) - math.log(a["bpp"]) or 1.0)
            return a[metric] + t * (b[metric] - a[metric])
    if len(pts) == 1 and math.isclose(pts[0]["bpp"], bpp):
        return pts[0][metric]
    return None


def position_keeping(result: dict, metric: str, fraction: float) -> tuple[float, float] | None:
    """(position, bpp) where ``metric`` first reaches ``fraction`` of its uncompressed reference.

    ``position`` is a fractional index into the rate points sorted by bpp (1.5 =
    halfway between the second and third). None if the curve never gets there.
    """
    ref = result.get("reference", {}).get(metric)
    if ref is None:
        raise SaicmError(f"results for {result['codec']} have no reference {metric!r}")
    target = fraction * ref
    pts = _sorted_points(result, metric)
    if pts[0][metric] >= target:
        return 0.0, pts[0]["bpp"]
    for i, (a, b) in enumerate(zip(pts, pts[1:])):
        if a[metric] < target <= b[metric]:
            t = (target - a[metric]) / (b[metric] - a[metric])
            bpp = math.exp(math.log(a["bpp"]) + t * (math.log(b["bpp"]) - math.log(a["bpp"])))
            return i + t, bpp
    return None


def rate_at_position(result: dict, position: float) -> float:
    """The anchor's bpp on another set at a fractional rate-point position (log-interpolated)."""
    pts = sorted(result["points"], key=lambda p: p["bpp"])
    i = min(int(position), len(pts) - 2)
    t = position - i
    a, b = pts[i], pts[i + 1]
    return math.exp(math.log(a["bpp"]) + t * (math.log(b["bpp"]) - math.log(a["bpp"])))


def privacy_at_task_rate(detection: dict, faces: dict, others: dict[str, dict], fraction: float = 0.9,
                         metric: str = "ap") -> dict:
    """Face retention of the anchor and of ``others`` (name → faces results) at the anchor's operating point."""
    if [p["quality"] for p in sorted(detection["points"], key=lambda p: p["bpp"])] != \
            [p["quality"] for p in sorted(faces["points"], key=lambda p: p["bpp"])]:
        raise SaicmError("the anchor's detection and face results must share their rate points")
    hit = position_keeping(detection, metric, fraction)
    out = {"fraction": fraction, "metric": metric, "reference": detection["reference"][metric],
           "anchor": detection["codec"]}
    if hit is None:
        best = max(p[metric] for p in detection["points"])
        out.update(reached=False, best=best)
        return out
    pos, det_bpp = hit
    face_bpp = rate_at_position(faces, pos)
    out.update(reached=True, position=pos, detection_bpp=det_bpp, faces_bpp=face_bpp,
               retention={detection["codec"]: value_at_rate(faces, "face_retention", face_bpp)})
    for name, res in others.items():
        out["retention"][name] = value_at_rate(res, "face_retention", face_bpp)
    return out
