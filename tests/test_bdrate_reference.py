"""BD-rates against the field's reference implementation.

The expected values were computed with the ``bjontegaard`` package (FAU-LMS, 1.3.0, PyPI; ``bd_rate(...,
method="pchip", require_matching_points=False, min_overlap=0)``), whose PCHIP its authors report equal to the
JVET common-test-conditions spreadsheet (JVET-T2010) to 10 decimals. They are written in, not imported: the package
is not a dependency. The cubic-fit (VCEG-M33) and Akima values of the same curves are given beside them, so that
a change of interpolant (which the log-linear cases of test_bdrate.py cannot see: every method is exact on them)
fails here. Audit ``bdstandard``, 0.30.0.
"""

import pytest

from saicm.eval.bdrate import bd_rate

# the package README's example: libx265 presets, kbps and PSNR, listed from the highest rate down
X265 = ([9487.76, 4593.60, 2486.44, 1358.24], [40.037, 38.615, 36.845, 34.851],
        [9787.80, 4469.00, 2451.52, 1356.24], [40.121, 38.651, 36.970, 34.987])
# COCO128 YOLOX-nano AP, JPEG against mse-hyperprior-n64-v5 (benchmarks/results/machines): a saturating AP curve,
# 6 points against 7, where the cubic fit and PCHIP disagree in sign
YOLOX_AP = ([0.16408204610004817, 0.2913780894367516, 0.5023783563876275, 0.7659160874771368, 1.0387879917064307,
             1.8049639947376044], [11.272, 22.551, 30.787, 32.359, 33.084, 34.041],
            [0.17038359241507128, 0.26560423837845715, 0.3740274683650284, 0.4980760960360797, 0.6408570112986424,
             0.7980444538465257, 0.9749312565203844], [24.847, 26.959, 28.831, 30.202, 31.628, 31.991, 32.575])

# (curves, PCHIP = the reference, cubic fit, Akima)
CASES = {
    "x265 example": (X265, -4.417485350589045, -4.420462706125383, -4.425245156997493),
    "YOLOX AP, 6 against 7 points": (YOLOX_AP, -13.964346736893862, 3.035965016895137, -15.679995485236574),
    "flat top": (([0.05, 0.1, 0.2, 0.4, 0.8, 1.6], [10, 25, 35, 39, 40.9, 41.0],
                  [0.05, 0.1, 0.2, 0.4, 0.8, 1.6], [12, 27, 36, 39.5, 40.95, 41.01]),
                 -10.409324386186746, -3.74864230318257, -10.316661968615525),
    "3 points": (([0.1, 0.3, 0.9], [28, 32, 35], [0.12, 0.3, 0.8], [28.5, 32.2, 35.3]),
                 -5.483003945610909, -5.450606260328872, -5.491008848279755),
    "4 against 6 points": ((X265[0], X265[1], [10000, 7000, 4500, 3000, 2000, 1300],
                            [40.2, 39.5, 38.6, 37.7, 36.6, 34.9]),
                           -7.080470089233204, -7.564815160072868, -7.137204158779209),
    "overlap of 0.5 dB": (([0.1, 0.2, 0.4, 0.8], [28, 31, 34, 37], [0.6, 1.0, 1.6, 2.5], [36.5, 38, 39.5, 41]),
                          -13.247655025227134, -13.19243382912788, -13.23666501475671),
}


@pytest.mark.parametrize("name", CASES)
def test_bd_rate_is_the_reference_pchip(name):
    curves, pchip, cubic, akima = CASES[name]
    got = bd_rate(*curves, envelope=False).percent
    assert got == pytest.approx(pchip, abs=1e-6)
    assert bd_rate(*curves).percent == pytest.approx(pchip, abs=1e-6)  # monotone curves: the envelope keeps all
    # (the other methods are further off than the tolerance, so the check above tells them apart)
    assert abs(cubic - pchip) > 1e-3 and abs(akima - pchip) > 1e-3


def test_a_rate_scaled_by_a_constant_is_that_constant_by_every_method():
    r, m = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2], [28, 30.5, 32.7, 34.6, 36.1, 37.2]
    assert bd_rate(r, m, [0.9 * x for x in r], m).percent == pytest.approx(-10.0, abs=1e-9)
    r3, m3 = [0.1, 0.3, 0.9], [28, 32, 35]  # 3 points: the cubic fit is underdetermined (-10.0000586), PCHIP exact
    assert bd_rate(r3, m3, [0.9 * x for x in r3], m3).percent == pytest.approx(-10.0, abs=1e-9)


def test_the_envelope_is_the_reference_on_the_points_it_keeps():
    # an AP dip: the reference drops (0.8, 35.5); the package (which refuses a metric that does not rise) gives
    # -7.434570463357648 on the four points kept
    res = bd_rate([0.1, 0.2, 0.4, 0.8, 1.6], [20, 30, 36, 35.5, 40], [0.1, 0.2, 0.4, 0.8, 1.6], [21, 31, 37, 38, 40.2])
    assert res.dropped == (("reference", 0.8, 35.5),)
    assert res.percent == pytest.approx(-7.434570463357648, abs=1e-6)
