"""Onset fits (pure): the vectorised sums give the same coefficients and standard errors
as an explicit least squares over the hours, and recover a change of regime."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from processors.onset import onset_days, onset_fits, onset_name
from processors.wetstock import window_fits

KEYS = ["station_id", "tank_id"]
WINDOW = 20
DAY0 = 20_000  # local day number of the first day


def hours(leak_from_day: int | None, leak_l_h: float, gain_from_day: int | None = None,
          gain: float = 0.0, noise_l: float = 2.0, seed: int = 3) -> pl.DataFrame:  # fmt: skip
    """Design rows of one tank over WINDOW days: a delivery every 3 days (a segment),
    one dispenser's cumulative sales ``x1_20_l`` (heavier by day), gauge noise ``noise_l``; a leak
    of ``leak_l_h`` from ``leak_from_day`` on; from ``gain_from_day`` the dispenser records
    ``gain`` more than it draws."""
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
        frame = frame.with_columns(
            pl.col("y_20_l") + gain * (pl.col("x1_20_l") - start).clip(0.0, None)
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
