"""Least squares by sufficient statistics, for many small regressions at once.

The SIR fits (:func:`processors.wetstock.window_fits`, :func:`processors.onset.onset_fits`)
are one regression per tank and window end day, thousands at a time. Instead of a pass
over the hours per regression, each variable's sum and each pair's sum of products are
taken per key, segment and day (:func:`window_sums`), summed over a window's days per
segment (:func:`segment_sums`), centred per segment — one intercept per segment — and
summed over the segments (:func:`centred`); :func:`solve` then solves every row's normal
equations at once, as one stack of small matrices.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
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


def solve(fits: pl.DataFrame, xs: list[str], y: str,
          covariances: Sequence[tuple[str, str]] = ()) -> pl.DataFrame:  # fmt: skip
    """Every row's normal equations at once: ``fits`` with ``b_<x>``, ``se_<x>`` (null
    without residual degrees of freedom), ``dof``, ``rss``, and ``cov_<a>_<b>`` for each
    pair of ``covariances`` (the standard error of a sum of coefficients needs it).

    The (small) matrices are stacked into one array and inverted by LAPACK in a single
    batched call: one Polars expression per matrix cell and elimination step cost far
    more than the arithmetic, at the sizes of the onset and pulse fits (15–16
    regressors). A singular or incomplete matrix gives NaN coefficients."""
    names, p = [*xs, y], len(xs)
    h = fits.height

    def cell(a: str, b: str) -> np.ndarray:
        return fits[_c(a, b, names)].cast(pl.Float64).fill_null(np.nan).to_numpy()

    matrix = np.empty((h, p, p))
    rhs = np.empty((h, p))
    for i in range(p):
        for j in range(i, p):
            matrix[:, i, j] = matrix[:, j, i] = cell(xs[i], xs[j])
        rhs[:, i] = cell(xs[i], y)
    # A regressor without variation inside any segment (a tank with one dispenser has no
    # "other dispensers") gets a unit diagonal: its coefficient is 0 and it changes nothing.
    diagonal = np.arange(p)
    held = matrix[:, diagonal, diagonal]
    matrix[:, diagonal, diagonal] = np.where(held > 1e-9, held, 1.0)
    inverse = _inverse(matrix)
    beta = np.einsum("hij,hj->hi", inverse, rhs)
    rss = np.clip(cell(y, y) - (beta * rhs).sum(axis=1), 0.0, None)
    dof = (fits["n"] - p - fits["segments"]).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        s2 = np.where(dof > 0, rss / np.where(dof > 0, dof, 1), np.nan)
        se = np.sqrt(s2[:, None] * inverse[:, diagonal, diagonal])
    solved = {
        "dof": pl.Series(dof), "rss": pl.Series(rss, dtype=pl.Float64),
        **{f"b_{x}": pl.Series(beta[:, i]) for i, x in enumerate(xs)},
        **{f"se_{x}": pl.Series(se[:, i]) for i, x in enumerate(xs)},
        **{f"cov_{a}_{b}": pl.Series(s2 * inverse[:, xs.index(a), xs.index(b)])
           for a, b in covariances},
    }  # fmt: skip
    positive = pl.col("dof") > 0
    return fits.with_columns(**{k: pl.lit(v) for k, v in solved.items()}).with_columns(
        pl.when(positive).then(pl.col(c)).alias(c)
        for c in solved if c.startswith(("se_", "cov_"))
    )  # fmt: skip


def _inverse(matrix: np.ndarray) -> np.ndarray:
    """The inverses of a stack of matrices; NaN for one that is singular or not finite."""
    finite = np.isfinite(matrix).all(axis=(1, 2))
    safe = np.where(finite[:, None, None], matrix, np.eye(matrix.shape[1]))
    try:
        inverse = np.linalg.inv(safe)
    except np.linalg.LinAlgError:  # rare: one singular matrix; invert one at a time
        inverse = np.stack([_one_inverse(m) for m in safe]) if len(safe) else safe
    inverse[~finite] = np.nan
    return inverse


def _one_inverse(matrix: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.inv(matrix)
    except np.linalg.LinAlgError:
        return np.full_like(matrix, np.nan)
