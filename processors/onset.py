"""Onset fits: the SIR fit of :func:`processors.wetstock.window_fits` with a change of
regime inside the window.

A leak, or a tampered meter, usually starts on some day and goes on. Over a 30-day window
that holds both regimes, the one-rate fit sees a ramp where it expects a line, and
reports a fraction of the true rate with a noisy residual: an onset late in the window
may pass a tank that loses litres every hour. So beside the whole-window fit, each
window is also fitted with, for each of a few candidate onset days ``c``, extra
regressors that are zero before ``c`` and continue their variable after it::

    o_v = 0 before day c;  v − v(c) from day c on        (v: elapsed time, or a dispenser's
                                                         cumulative sales)

Its coefficient is the *change* at ``c`` of ``v``'s coefficient: the leak rate added on
day ``c``, or the gain a dispenser's meter took on. The rules take the candidate that
fits best (the least residual sum of squares: the maximum-likelihood change point under
Gaussian noise) and test its change against a Bonferroni-corrected bound, so that the
family of onset tests keeps a known false-alarm rate whichever candidate is taken.
Choosing by fit, not by the largest change, matters: at a wrong onset the model is
misspecified, and its coefficients — with standard errors that do not know it — can
show a change that is not there.

Vectorised like :func:`processors.wetstock.window_fits` (see
:mod:`processors.least_squares`): the per-day sufficient statistics give every
candidate's sums as sums over the days from ``c`` on — for ``o_v`` with offset ``D``:
``Σ o_v·w = Σ v·w − D·Σ w`` over those days, no pass over the hours.
``D`` is ``v``'s least value from day ``c`` on in the segment (``v`` never decreases), so
``o_v`` is continuous at ``c`` in the segment that spans it; in a segment wholly after
``c`` any constant is absorbed by the segment's intercept.
"""

from __future__ import annotations

import polars as pl

from processors.least_squares import (
    centred,
    days_with_data,
    segment_sums,
    solve,
    window_sums,
)


def onset_name(v: str) -> str:
    """The name of ``v``'s onset regressor (its coefficient is ``b_`` + this)."""
    return f"o_{v}"


def onset_days(window_days: int, step_days: int, min_after_days: int) -> list[int]:
    """Candidate onsets as offsets from the window's first day: every ``step_days`` days,
    leaving at least ``min_after_days`` days after the last and one day before the first."""
    return list(range(step_days, window_days - min_after_days + 1, step_days))


def _p(a: str, b: str, names: list[str]) -> str:
    return f"p_{a}_{b}" if names.index(a) <= names.index(b) else f"p_{b}_{a}"


def onset_fits(design_rows: pl.DataFrame, keys: list[str], xs: list[str], y: str,
               ends: pl.DataFrame, window_days: int, ramps: list[str],
               offsets: list[int]) -> pl.DataFrame:  # fmt: skip
    """Least squares of ``y`` on ``xs`` and an onset regressor per ``ramps`` (a subset of
    ``xs``), one intercept per segment, per ``keys``, window end day and candidate onset
    day (``onset_day`` = the window's first day + each of ``offsets``).

    Returns keys, end_day, onset_day, ``b_``/``se_`` of every regressor (the onset ones
    named by :func:`onset_name`), ``n`` (hours), ``n_after`` (hours from the onset day on),
    ``segments``, ``days``, ``readings``, ``dof`` and ``rss`` (the residual sum of squares:
    the least is the likeliest onset).
    """
    names = [*xs, y]
    spread = window_sums(design_rows, keys, names, ends, window_days, lows=ramps)
    per_segment = segment_sums(spread, keys)
    onsets = ends.select(*keys, "end_day").unique().join(
        pl.DataFrame({"_k": offsets}, schema={"_k": pl.Int64}), how="cross"
    ).with_columns(onset_day=pl.col("end_day") - window_days + 1 + pl.col("_k")).drop("_k")
    tail_sums = {
        "_nc": pl.col("n").sum(),
        **{f"_t_s_{v}": pl.col(f"s_{v}").sum() for v in names},
        **{f"_t_{r}_{v}": pl.col(_p(r, v, names)).sum() for r in ramps for v in names},
        **{f"_d_{r}": pl.col(f"lo_{r}").min() for r in ramps},
    }
    seg_end = [*keys, "segment", "end_day"]
    tail = (
        spread.join(onsets, on=[*keys, "end_day"])
        .filter(pl.col("day") >= pl.col("onset_day"))
        .group_by(*seg_end, "onset_day")
        .agg(**tail_sums)
    )
    full = per_segment.join(onsets, on=[*keys, "end_day"]).join(
        tail, on=[*seg_end, "onset_day"], how="left"
    ).with_columns(pl.col(c).fill_null(0.0) for c in tail_sums)  # a segment before the onset

    def d(r: str) -> pl.Expr:
        return pl.col(f"_d_{r}")

    # Sums over the segment of the onset regressors: Σ o_r, Σ o_r·v, Σ o_r·o_q.
    s_o = {r: pl.col(f"_t_s_{r}") - d(r) * pl.col("_nc") for r in ramps}
    full = full.with_columns(
        **{f"_so_{r}": s_o[r] for r in ramps},
        **{f"_po_{r}_{v}": pl.col(f"_t_{r}_{v}") - d(r) * pl.col(f"_t_s_{v}")
           for r in ramps for v in names},
        **{f"_poo_{r}_{q}": pl.col(f"_t_{r}_{q}") - d(r) * pl.col(f"_t_s_{q}")
           - d(q) * pl.col(f"_t_s_{r}") + d(r) * d(q) * pl.col("_nc")
           for i, r in enumerate(ramps) for q in ramps[i:]},
    )  # fmt: skip
    order = [*xs, *map(onset_name, ramps), y]
    extra: dict[str, pl.Expr] = {}
    for r in ramps:
        o, so = onset_name(r), pl.col(f"_so_{r}")
        for v in names:  # c_<a>_<b> is named in the order of ``order``
            a, b = (v, o) if order.index(v) < order.index(o) else (o, v)
            extra[f"c_{a}_{b}"] = pl.col(f"_po_{r}_{v}") - so * pl.col(f"s_{v}") / pl.col("n")
    for i, r in enumerate(ramps):
        for q in ramps[i:]:
            extra[f"c_{onset_name(r)}_{onset_name(q)}"] = (
                pl.col(f"_poo_{r}_{q}") - pl.col(f"_so_{r}") * pl.col(f"_so_{q}") / pl.col("n")
            )
    extra["n_after"] = pl.col("_nc")
    fits = centred(full, keys, names, ["end_day", "onset_day"], extra).join(
        days_with_data(spread, keys), on=[*keys, "end_day"],
    )  # fmt: skip
    regressors = [*xs, *map(onset_name, ramps)]
    return solve(fits, regressors, y).select(
        *keys, "end_day", "onset_day", *[f"b_{x}" for x in regressors],
        *[f"se_{x}" for x in regressors], "n", pl.col("n_after").cast(pl.Int64), "segments",
        "days", "readings", "dof", "rss",
    )  # fmt: skip



def likeliest(onsets: pl.DataFrame, whole: pl.DataFrame, keys: list[str],
              changed: pl.Expr) -> pl.DataFrame:  # fmt: skip
    """Per ``keys`` and end day, the candidate onset with the least residual sum of
    squares, with ``onset_selected``: it explains enough more than the whole-window fit
    (``whole``: keys, end_day, rss) to pay, by the Bayesian information criterion, for
    its ``changed`` coefficients plus the onset day itself::

        n · ln(rss_whole / rss_onset) > (changed + 1) · ln(n)
    """
    best = onsets.sort("rss").group_by(*keys, "end_day").first()
    joined = best.join(whole.select(*keys, "end_day", _rss_whole=pl.col("rss")),
                       on=[*keys, "end_day"])  # fmt: skip
    # below 1 mL rms an hour both fits are exact (no gauge reads finer): no change to see
    floor = pl.col("n") * 1e-6
    gain = pl.col("n") * (pl.max_horizontal("_rss_whole", floor)
                          / pl.max_horizontal("rss", floor)).log()  # fmt: skip
    return joined.with_columns(
        onset_selected=(gain > (changed + 1) * pl.col("n").cast(pl.Float64).log()).fill_null(
            False
        )
    ).drop("_rss_whole")

