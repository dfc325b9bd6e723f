"""Privacy at a task-preserving rate, on hand-made curves with known answers."""

import math

import pytest

from saicm.eval.privacy import position_keeping, privacy_at_task_rate, value_at_rate


def res(codec, pts, ref=None, metric="ap"):
    return {"codec": codec, "dataset": "d", "reference": {metric: ref} if ref is not None else {},
            "points": [dict(quality=q, bpp=b, **{metric: v}) for q, b, v in pts]}


def test_value_at_rate_interpolates_in_log_rate_and_never_extrapolates():
    r = res("x", [(1, 0.1, 10.0), (2, 0.4, 30.0)], metric="face_retention")
    assert value_at_rate(r, "face_retention", 0.2) == pytest.approx(20.0)  # 0.2 is halfway in log2
    assert value_at_rate(r, "face_retention", 0.05) is None
    assert value_at_rate(r, "face_retention", 0.5) is None


def test_position_keeping_finds_the_crossing():
    det = res("sa", [(1, 0.1, 20.0), (2, 0.2, 40.0), (3, 0.4, 44.0)], ref=50.0)
    pos, bpp = position_keeping(det, "ap", 0.8)  # target 40 -> exactly the second point
    assert pos == pytest.approx(1.0) and bpp == pytest.approx(0.2)
    pos, bpp = position_keeping(det, "ap", 0.84)  # target 42 -> halfway between points 2 and 3
    assert pos == pytest.approx(1.5) and bpp == pytest.approx(math.sqrt(0.2 * 0.4))
    assert position_keeping(det, "ap", 0.95) is None


def test_privacy_at_task_rate_reads_every_codec_at_the_anchor_rate():
    det = res("sa", [(1, 0.1, 20.0), (2, 0.2, 40.0), (3, 0.4, 44.0)], ref=50.0)
    faces = res("sa", [(1, 0.2, 5.0), (2, 0.4, 10.0), (3, 0.8, 20.0)], metric="face_retention")
    mse = res("mse", [(1, 0.1, 40.0), (2, 1.6, 80.0)], metric="face_retention")
    out = privacy_at_task_rate(det, faces, {"mse": mse}, fraction=0.8)
    assert out["reached"] and out["faces_bpp"] == pytest.approx(0.4)
    assert out["retention"]["sa"] == pytest.approx(10.0)
    assert out["retention"]["mse"] == pytest.approx(60.0)  # 0.4 is halfway between 0.1 and 1.6 in log2
    assert not privacy_at_task_rate(det, faces, {}, fraction=0.99)["reached"]
