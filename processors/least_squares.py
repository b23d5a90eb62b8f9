"""Least squares by sufficient statistics, for many small regressions at once.

The SIR fits (:func:`processors.wetstock.window_fits`, :func:`processors.onset.onset_fits`)
are one regression per tank and window end day, thousands at a time. Instead of a pass
over the hours per regression, each variable's sum and each pair's sum of products are
taken per key, segment and day (:func:`window_sums`), summed over a window's days per
segment (:func:`segment_sums`), centred per segment — one intercept per segment — and
summed over the segments (:func:`centred`); :func:`solve` then solves every row's normal
equations at once, one column per matrix cell.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl


def pairs(names: list[str]) -> list[tuple[str, str]]:
    """Each unordered pair of ``names`` (with itself), in the order of ``names``."""
    return [(a, b) for i, a in enumerate(names) for b in names[i:]]


def window_sums(design_rows: pl.DataFrame, keys: list[str], names: list[str],
                ends: pl.DataFrame, window_days: int,
                lows: Sequence[str] = ()) -> pl.DataFrame:  # fmt: skip
    """Per ``keys``, segment, day and window end day (``ends``) whose window holds the day:
    ``n``, ``readings``, ``s_<v>`` (Σ v) and ``p_<a>_<b>`` (Σ a·b) of the variables
    ``names``, each shifted by its segment's least value (small numbers, exact centring);
    ``lo_<v>``: the day's least (shifted) value, for each of ``lows``."""
    seg = [*keys, "segment"]
    bounds = ends.group_by(keys).agg(_lo=pl.col("end_day").min() - window_days + 1,
                                     _hi=pl.col("end_day").max())  # fmt: skip
    rows = design_rows.join(bounds, on=keys).filter(pl.col("day").is_between("_lo", "_hi"))
    rows = rows.with_columns((pl.col(v) - pl.col(v).min().over(seg)).alias(v) for v in names)
    daily = rows.group_by(*seg, "day").agg(
        pl.len().alias("n"), pl.col("readings").sum(),
        *[pl.col(v).sum().alias(f"s_{v}") for v in names],
        *[(pl.col(a) * pl.col(b)).sum().alias(f"p_{a}_{b}") for a, b in pairs(names)],
        *[pl.col(v).min().alias(f"lo_{v}") for v in lows],
    )  # fmt: skip
    return daily.join(ends, on=keys).filter(
        (pl.col("day") > pl.col("end_day") - window_days) & (pl.col("day") <= pl.col("end_day"))
    )


def days_with_data(spread: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Per ``keys`` and window end day, the days of :func:`window_sums` with a usable hour."""
    return spread.group_by(*keys, "end_day").agg(days=pl.col("day").n_unique())


def segment_sums(spread: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """:func:`window_sums` summed over the days of each window, per segment."""
    sums = [c for c in spread.columns if c[:2] in ("s_", "p_") or c in ("n", "readings")]
    return spread.group_by(*keys, "segment", "end_day").agg(pl.col(c).sum() for c in sums)


def centred(per_segment: pl.DataFrame, keys: list[str], names: list[str], by: list[str],
            extra: dict[str, pl.Expr] | None = None) -> pl.DataFrame:  # fmt: skip
    """The centred cross-products ``c_<a>_<b>`` of ``names`` (each segment about its own
    mean: one intercept per segment), summed over the segments per ``keys`` and ``by``,
    with ``n``, ``readings`` and ``segments``. ``extra``: more centred products to sum."""
    terms = {f"c_{a}_{b}": pl.col(f"p_{a}_{b}") - pl.col(f"s_{a}") * pl.col(f"s_{b}") / pl.col("n")
             for a, b in pairs(names) if f"p_{a}_{b}" in per_segment.columns}  # fmt: skip
    terms.update(extra or {})
    return per_segment.select(*keys, *by, "n", "readings", **terms).group_by(*keys, *by).agg(
        pl.col("n").sum(), pl.col("readings").sum(), pl.len().alias("segments"),
        *[pl.col(c).sum() for c in terms],
    )  # fmt: skip


def _c(a: str, b: str, names: list[str]) -> str:
    return f"c_{a}_{b}" if names.index(a) <= names.index(b) else f"c_{b}_{a}"


def solve(fits: pl.DataFrame, xs: list[str], y: str) -> pl.DataFrame:
    """Normal equations by Gauss–Jordan, one column per matrix cell, every row at once."""
    names, p = [*xs, y], len(xs)
    # A regressor without variation inside any segment (a tank with one dispenser has no
    # "other dispensers") gets a unit diagonal: its coefficient is 0 and it changes nothing.
    cells = {f"m{i}_{j}": pl.col(_c(xs[i], xs[j], names)) for i in range(p) for j in range(p)}
    for i in range(p):
        cells[f"m{i}_{i}"] = pl.when(cells[f"m{i}_{i}"] > 1e-9).then(cells[f"m{i}_{i}"]).otherwise(
            1.0
        )
        for j in range(p):
            cells[f"m{i}_{p + j}"] = pl.lit(1.0 if i == j else 0.0)
        cells[f"m{i}_{2 * p}"] = pl.col(_c(xs[i], y, names))
    frame = fits.with_columns(**cells)
    width = 2 * p + 1
    for i in range(p):
        frame = frame.with_columns(pl.col(f"m{i}_{j}") / pl.col(f"m{i}_{i}") for j in range(width))
        frame = frame.with_columns(
            pl.col(f"m{k}_{j}") - pl.col(f"m{k}_{i}") * pl.col(f"m{i}_{j}")
            for k in range(p) if k != i for j in range(width)
        )  # fmt: skip
    explained = pl.sum_horizontal(pl.col(f"m{i}_{2 * p}") * pl.col(_c(xs[i], y, names))
                                  for i in range(p))  # fmt: skip
    frame = frame.with_columns(
        dof=pl.col("n") - p - pl.col("segments"),
        **{f"b_{x}": pl.col(f"m{i}_{2 * p}") for i, x in enumerate(xs)},
    ).with_columns(rss=(pl.col(_c(y, y, names)) - explained).clip(0.0, None)).with_columns(
        _s2=pl.col("rss") / pl.col("dof")
    )  # fmt: skip
    return frame.with_columns(
        (pl.col("_s2") * pl.col(f"m{i}_{p + i}")).sqrt().alias(f"se_{x}")
        for i, x in enumerate(xs)
    ).with_columns(
        pl.when(pl.col("dof") > 0).then(pl.col(c)).alias(c)
        for c in [f"se_{x}" for x in xs]
    )  # fmt: skip
