"""Onset fits (pure): the vectorised sums give the same coefficients and standard errors
as an explicit least squares over the hours, and recover a change of regime."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from processors.onset import (
    during_pulse,
    end_name,
    likeliest,
    onset_days,
    onset_fits,
    onset_name,
    pulse_fits,
    pulse_name,
    pulse_pairs,
)
from processors.wetstock import window_fits

KEYS = ["station_id", "tank_id"]
WINDOW = 20
DAY0 = 20_000  # local day number of the first day


def hours(leak_from_day: int | None, leak_l_h: float, gain_from_day: int | None = None,
          gain: float = 0.0, noise_l: float = 2.0, seed: int = 3,
          gain_until_day: int | None = None) -> pl.DataFrame:  # fmt: skip
    """Design rows of one tank over WINDOW days: a delivery every 3 days (a segment),
    one dispenser's cumulative sales ``x1_20_l`` (heavier by day), gauge noise ``noise_l``; a leak
    of ``leak_l_h`` from ``leak_from_day`` on; from ``gain_from_day`` (until before
    ``gain_until_day``, None: the end) the dispenser records ``gain`` more than it draws."""
    rng = np.random.default_rng(seed)
    rows = []
    sold = 0.0
    for day in range(WINDOW):
        for h in range(24):
            hour = (DAY0 + day) * 24 - 8 + h
            t = hour + 0.5
            sold += rng.uniform(0, 40) if 6 <= h <= 22 else rng.uniform(0, 4)
            lost = 0.0
            if leak_from_day is not None:
                lost = leak_l_h * max(0.0, t - ((DAY0 + leak_from_day) * 24 - 8))
            y = 1000.0 * (day // 3) - lost + rng.normal(0, noise_l)
            rows.append({"station_id": "S1", "tank_id": "T1", "hour": hour, "day": DAY0 + day,
                         "segment": day // 3, "readings": 4, "t_h": t, "x1_20_l": sold,
                         "y_20_l": y})  # fmt: skip
    frame = pl.DataFrame(rows)
    if gain_from_day is not None:
        start = frame.filter(pl.col("day") == DAY0 + gain_from_day)["x1_20_l"].min()
        stop = float("inf")
        if gain_until_day is not None:
            stop = frame.filter(pl.col("day") == DAY0 + gain_until_day)["x1_20_l"].min()
        frame = frame.with_columns(
            pl.col("y_20_l") + gain * (pl.col("x1_20_l").clip(None, stop) - start).clip(0.0, None)
        )
    return frame


def ends() -> pl.DataFrame:
    return pl.DataFrame({"station_id": ["S1"], "tank_id": ["T1"], "end_day": [DAY0 + WINDOW - 1]})


def lstsq(frame: pl.DataFrame, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients and standard errors of y on ``columns`` plus a dummy per segment."""
    segments = frame["segment"].to_numpy()
    dummies = (segments[:, None] == np.unique(segments)[None, :]).astype(float)
    x = np.column_stack([frame[c].to_numpy() for c in columns] + [dummies])
    y = frame["y_20_l"].to_numpy()
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    dof = len(y) - x.shape[1]
    s2 = float(((y - x @ beta) ** 2).sum()) / dof
    se = np.sqrt(np.diag(np.linalg.inv(x.T @ x)) * s2)
    return beta[: len(columns)], se[: len(columns)]


def with_onset(frame: pl.DataFrame, v: str, onset_day: int) -> pl.DataFrame:
    """``frame`` with the onset regressor of ``v`` built hour by hour."""
    after = pl.col("day") >= onset_day
    first = pl.col(v).filter(after).min().over("segment")
    return frame.with_columns(pl.when(after).then(pl.col(v) - first).otherwise(0.0)
                              .alias(onset_name(v)))  # fmt: skip


@pytest.mark.parametrize("ramp", ["t_h", "x1_20_l"])
def test_every_candidate_equals_an_explicit_least_squares(ramp: str) -> None:
    frame = hours(leak_from_day=9, leak_l_h=1.5)
    offsets = onset_days(WINDOW, 4, 4)
    fits = onset_fits(frame, KEYS, ["t_h", "x1_20_l"], "y_20_l", ends(), WINDOW, [ramp], offsets)
    assert sorted(fits["onset_day"]) == [DAY0 + k for k in offsets]
    for row in fits.iter_rows(named=True):
        explicit = with_onset(frame, ramp, row["onset_day"])
        beta, se = lstsq(explicit, ["t_h", "x1_20_l", onset_name(ramp)])
        got = [row["b_t_h"], row["b_x1_20_l"], row[f"b_{onset_name(ramp)}"]]
        got_se = [row["se_t_h"], row["se_x1_20_l"], row[f"se_{onset_name(ramp)}"]]
        assert got == pytest.approx(beta.tolist(), rel=1e-5, abs=1e-9)
        assert got_se == pytest.approx(se.tolist(), rel=1e-5)
        assert row["n_after"] == explicit.filter(pl.col("day") >= row["onset_day"]).height


def test_the_onset_fit_finds_the_rate_a_whole_window_fit_dilutes() -> None:
    frame = hours(leak_from_day=12, leak_l_h=2.0)
    whole = window_fits(frame, KEYS, ["t_h"], "y_20_l", ends(), WINDOW)
    fits = onset_fits(frame, KEYS, ["t_h"], "y_20_l", ends(), WINDOW, ["t_h"],
                      onset_days(WINDOW, 2, 4))  # fmt: skip
    at_onset = fits.filter(pl.col("onset_day") == DAY0 + 12).row(0, named=True)
    assert -at_onset["b_o_t_h"] == pytest.approx(2.0, abs=0.1)  # the rate added on day 12
    assert -at_onset["b_t_h"] == pytest.approx(0.0, abs=0.1)  # none before
    assert -whole["b_t_h"][0] < 1.0  # one rate over the window sees less than half
    best = fits.with_columns(z=-pl.col("b_o_t_h") / pl.col("se_o_t_h")).sort("z")
    assert best["onset_day"][-1] == DAY0 + 12


def test_a_meter_that_starts_to_gain_is_found_from_its_onset() -> None:
    frame = hours(leak_from_day=None, leak_l_h=0.0, gain_from_day=10, gain=0.008, noise_l=0.3)
    fits = onset_fits(frame, KEYS, ["t_h", "x1_20_l"], "y_20_l", ends(), WINDOW, ["x1_20_l"],
                      onset_days(WINDOW, 2, 4))  # fmt: skip
    at_onset = fits.filter(pl.col("onset_day") == DAY0 + 10).row(0, named=True)
    assert at_onset["b_o_x1_20_l"] == pytest.approx(0.008, abs=0.0015)
    assert at_onset["b_x1_20_l"] == pytest.approx(0.0, abs=0.0015)
    best = fits.with_columns(z=pl.col("b_o_x1_20_l") / pl.col("se_o_x1_20_l")).sort("z")
    assert abs(best["onset_day"][-1] - (DAY0 + 10)) <= 2


def test_candidates_leave_days_on_both_sides() -> None:
    assert onset_days(30, 2, 6) == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24]
    assert onset_days(10, 3, 4) == [3, 6]


def pairs(days: list[tuple[int, int]]) -> pl.DataFrame:
    return pl.DataFrame({"station_id": "S1", "tank_id": "T1", "end_day": DAY0 + WINDOW - 1,
                         "onset_day": [DAY0 + a for a, _ in days],
                         "pulse_end_day": [DAY0 + b for _, b in days]})  # fmt: skip


def with_pulse(frame: pl.DataFrame, v: str, onset_day: int, end_day: int) -> pl.DataFrame:
    """``frame`` with the pulse regressor of ``v`` built hour by hour: 0 before the
    onset, ``v − v(onset)`` until the end day, ``v(end) − v(onset)`` from it on (``v(c)``:
    its least value from day c on, in the segment)."""
    start = pl.col(v).filter(pl.col("day") >= onset_day).min().over("segment")
    stop = pl.col(v).filter(pl.col("day") >= end_day).min().over("segment")
    pulse = (pl.when(pl.col("day") < onset_day).then(0.0)
             .when(pl.col("day") < end_day).then(pl.col(v) - start).otherwise(stop - start))
    return frame.with_columns(pulse.fill_null(0.0).alias(pulse_name(v)))  # fmt: skip


def test_every_pulse_candidate_equals_an_explicit_least_squares() -> None:
    """Coefficients, standard errors and the gain *during* the pulse (with its covariance
    term) against numpy's least squares on the regressors built hour by hour; the pairs
    put change days inside a segment and at its boundaries."""
    frame = hours(leak_from_day=4, leak_l_h=0.5, gain_from_day=7, gain_until_day=13,
                  gain=0.01, noise_l=1.0)  # fmt: skip
    days = [(4, 10), (7, 13), (6, 14), (9, 16), (3, 15)]
    fits = pulse_fits(frame, KEYS, ["t_h", "x1_20_l"], "y_20_l", ends(), WINDOW, ["t_h"],
                      ["x1_20_l"], pairs(days))  # fmt: skip
    assert fits.height == len(days)
    q = pulse_name("x1_20_l")
    columns = ["t_h", "x1_20_l", onset_name("t_h"), end_name("t_h"), q]
    gain, gain_se = during_pulse(fits, "x1_20_l")
    fits = fits.with_columns(_during=gain, _during_se=gain_se)
    for row in fits.iter_rows(named=True):
        c1, c2 = row["onset_day"], row["pulse_end_day"]
        explicit = with_pulse(frame, "x1_20_l", c1, c2)
        explicit = with_onset(explicit, "t_h", c1)
        explicit = explicit.rename({onset_name("t_h"): "_o"})
        explicit = with_onset(explicit, "t_h", c2).rename(
            {onset_name("t_h"): end_name("t_h"), "_o": onset_name("t_h")})
        beta, se = lstsq(explicit, columns)
        assert [row[f"b_{c}"] for c in columns] == pytest.approx(beta.tolist(), rel=1e-5,
                                                                abs=1e-9)  # fmt: skip
        assert [row[f"se_{c}"] for c in columns] == pytest.approx(se.tolist(), rel=1e-5)
        # the gain during the pulse, reparametrised: x1 outside it and x1 within it
        during = explicit.with_columns(_outside=pl.col("x1_20_l") - pl.col(q))
        beta2, se2 = lstsq(during, ["t_h", "_outside", onset_name("t_h"), end_name("t_h"), q])
        assert row["_during"] == pytest.approx(beta2[4], rel=1e-5)
        assert row["_during_se"] == pytest.approx(se2[4], rel=1e-5)
        assert row["n_after"] == explicit.filter(pl.col("day") >= c1).height
        assert row["n_end"] == explicit.filter(pl.col("day") >= c2).height


def test_the_pulse_is_found_where_one_onset_cannot_fit_it() -> None:
    """A meter gaining 1 % from day 6 until day 13 only: the best pulse is that pair, the
    gain during it is the injected one, and it beats the best single onset by BIC."""
    frame = hours(leak_from_day=None, leak_l_h=0.0, gain_from_day=6, gain_until_day=13,
                  gain=0.01, noise_l=0.3)  # fmt: skip
    xs, offsets = ["t_h", "x1_20_l"], onset_days(WINDOW, 1, 4)
    whole = window_fits(frame, KEYS, xs, "y_20_l", ends(), WINDOW)
    onsets = onset_fits(frame, KEYS, xs, "y_20_l", ends(), WINDOW, ["t_h", "x1_20_l"], offsets)
    pulses = pulse_fits(frame, KEYS, xs, "y_20_l", ends(), WINDOW, ["t_h"], ["x1_20_l"],
                        pairs(pulse_pairs(offsets, 3)))  # fmt: skip
    onset = likeliest(onsets, whole, KEYS, pl.lit(2), min_hours=72).row(0, named=True)
    pulse = likeliest(pulses, whole, KEYS, pl.lit(3), min_hours=72)
    gain, gain_se = during_pulse(pulse, "x1_20_l")
    best = pulse.with_columns(_g=gain, _se=gain_se).row(0, named=True)
    assert (best["onset_day"], best["pulse_end_day"]) == (DAY0 + 6, DAY0 + 13)
    assert best["_g"] == pytest.approx(0.01, abs=3 * best["_se"])
    assert best["bic"] < onset["bic"] < 0


def test_pulse_pairs_are_every_pair_far_enough_apart() -> None:
    assert pulse_pairs([1, 2, 3, 4, 5], 3) == [(1, 4), (1, 5), (2, 5)]
    assert len(pulse_pairs(list(range(1, 25)), 3)) == 231


def test_the_likeliest_change_is_chosen_among_those_with_hours_on_every_side() -> None:
    """The hour filter comes before the choice: the best-fitting candidate with too few
    hours on one side is neither taken nor allowed to hide the best usable one (both
    rules share this, slow_leak and persistent_gain)."""
    whole = pl.DataFrame({"station_id": ["S1"], "tank_id": ["T1"], "end_day": [DAY0],
                          "rss": [400.0]})  # fmt: skip
    onsets = pl.DataFrame({
        "station_id": "S1", "tank_id": "T1", "end_day": DAY0, "onset_day": [1, 2, 3],
        "n": 700, "n_after": [60, 300, 640], "rss": [100.0, 200.0, 150.0],
    })  # fmt: skip
    [best] = likeliest(onsets, whole, KEYS, pl.lit(1), min_hours=72).to_dicts()
    assert best["onset_day"] == 2  # day 1: 60 hours after it; day 3: 60 before it
    assert best["bic"] == pytest.approx(700 * np.log(200 / 400) + 2 * np.log(700))
    assert best["onset_selected"]
    pulses = onsets.with_columns(pulse_end_day=pl.Series([5, 6, 7]),
                                 n_after=pl.Series([500, 500, 300]),
                                 n_end=pl.Series([450, 200, 100]))  # fmt: skip
    [best] = likeliest(pulses, whole, KEYS, pl.lit(1), min_hours=72).to_dicts()
    assert best["onset_day"] == 3  # day 1: 50 hours in the pulse; day 2: ok but worse
    assert best["bic"] == pytest.approx(700 * np.log(150 / 400) + 3 * np.log(700))
    assert likeliest(onsets, whole, KEYS, pl.lit(1), min_hours=400).is_empty()
