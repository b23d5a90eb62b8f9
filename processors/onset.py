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

A fraud is also put *right*: a meter tampered on day ``c1`` and reset on day ``c2``
inside the window is a pulse, which one change day cannot model (the dispensers drawing
on the same tank in similar hours then share the misfit, and the gain can land on the
wrong one). :func:`pulse_fits` fits, per candidate pair, the pulse regressor::

    q_v = 0 before c1;  v − v(c1) on [c1, c2);  v(c2) − v(c1) from c2 on

whose coefficient is the gain added during the pulse (the meter back to its old error
after it), beside free changes of other variables (time) on both days.

Vectorised like :func:`processors.wetstock.window_fits` (see
:mod:`processors.least_squares`): the per-day sufficient statistics give every
candidate's sums as sums over the days from ``c`` on — for ``o_v`` with offset ``D``:
``Σ o_v·w = Σ v·w − D·Σ w`` over those days, no pass over the hours.
``D`` is ``v``'s least value from day ``c`` on in the segment (``v`` never decreases), so
``o_v`` is continuous at ``c`` in the segment that spans it; in a segment wholly after
``c`` any constant is absorbed by the segment's intercept. ``q_v`` is ``o_v`` at ``c1``
minus ``o_v`` at ``c2``: its sums follow from the same sums at both days (the constant
``v(c2) − v(c1)`` after ``c2`` is *not* absorbed in a segment spanning ``c2``, and is
counted there).
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from processors.least_squares import (
    centred,
    days_with_data,
    segment_sums,
    solve,
    window_sums,
)

#: A change regressor as a combination of the basic ones: ``(day column, v)`` stands for
#: ``v − D`` from that day on (0 before), with its coefficient in the combination.
Change = Mapping[tuple[str, str], float]
#: The candidate's change days, as columns of the candidate frames.
ONSET, PULSE_END = "onset_day", "pulse_end_day"


def onset_name(v: str) -> str:
    """The name of ``v``'s onset regressor (its coefficient is ``b_`` + this)."""
    return f"o_{v}"


def end_name(v: str) -> str:
    """The name of ``v``'s change regressor at a pulse's end day (``pulse_end_day``)."""
    return f"e_{v}"


def pulse_name(v: str) -> str:
    """The name of ``v``'s pulse regressor: its coefficient is the change of ``v``'s
    coefficient from ``onset_day`` until ``pulse_end_day``."""
    return f"q_{v}"


def onset_days(window_days: int, step_days: int, min_after_days: int) -> list[int]:
    """Candidate onsets as offsets from the window's first day: every ``step_days`` days,
    leaving at least ``min_after_days`` days after the last and one day before the first."""
    return list(range(step_days, window_days - min_after_days + 1, step_days))


def pulse_pairs(offsets: list[int], min_days: int) -> list[tuple[int, int]]:
    """Every pair of candidate days (``offsets``) at least ``min_days`` apart: what a
    search for a pulse's start and end can reach, so what its Bonferroni bound counts."""
    return [(a, b) for a in offsets for b in offsets if b - a >= min_days]


def _p(a: str, b: str, names: list[str]) -> str:
    return f"p_{a}_{b}" if names.index(a) <= names.index(b) else f"p_{b}_{a}"


def _tails(spread: pl.DataFrame, candidates: pl.DataFrame, keys: list[str], day: str,
           names: list[str], changing: list[str]) -> pl.DataFrame:  # fmt: skip
    """Per segment, window end day and distinct value of the candidates' column ``day``:
    the sums of :func:`processors.least_squares.window_sums` over the days from that day
    on (``_<day>_n``, ``_<day>_s_<v>``, ``_<day>_p_<r>_<v>`` for ``r`` in ``changing``)
    and ``_<day>_d_<r>``, ``r``'s least value from that day on (the offset ``D``)."""
    at = [*keys, "end_day", day]
    tail = spread.join(candidates.select(at).unique(), on=[*keys, "end_day"]).filter(
        pl.col("day") >= pl.col(day)
    )
    return tail.group_by(*keys, "segment", *at[len(keys):]).agg(
        pl.col("n").sum().alias(f"_{day}_n"),
        *[pl.col(f"s_{v}").sum().alias(f"_{day}_s_{v}") for v in names],
        *[pl.col(_p(r, v, names)).sum().alias(f"_{day}_p_{r}_{v}")
          for r in changing for v in names],
        *[pl.col(f"lo_{r}").min().alias(f"_{day}_d_{r}") for r in changing],
    )  # fmt: skip


def _basic_sums(days: list[str], names: list[str],
                changing: list[str]) -> dict[str, pl.Expr]:  # fmt: skip
    """Per segment, the sums of the basic change regressors ``B(day, r) = r − D`` from
    ``day`` on, from :func:`_tails` at each of ``days`` (in time order: a later day's
    tail lies inside an earlier one's): ``Σ B``, ``Σ B·v`` (``v`` in ``names``) and
    ``Σ B·B'`` — over the later day's tail, where both are nonzero."""

    def t(day: str, what: str) -> pl.Expr:
        return pl.col(f"_{day}_{what}")

    out: dict[str, pl.Expr] = {}
    for day in days:
        for r in changing:
            d = t(day, f"d_{r}")
            out[f"S|{day}|{r}"] = t(day, f"s_{r}") - d * t(day, "n")
            for v in names:
                out[f"P|{day}|{r}|{v}"] = t(day, f"p_{r}_{v}") - d * t(day, f"s_{v}")
    for i, first in enumerate(days):
        for later in days[i:]:
            for r in changing:
                for q in changing:
                    if first == later and changing.index(q) < changing.index(r):
                        continue
                    d_r, d_q = t(first, f"d_{r}"), t(later, f"d_{q}")
                    out[f"Q|{first}|{r}|{later}|{q}"] = (
                        t(later, f"p_{r}_{q}") - d_r * t(later, f"s_{q}")
                        - d_q * t(later, f"s_{r}") + d_r * d_q * t(later, "n")
                    )  # fmt: skip
    return out


def _cross(a: tuple[str, str], b: tuple[str, str], days: list[str],
           changing: list[str]) -> str:  # fmt: skip
    """The name of ``Σ B_a·B_b`` in :func:`_basic_sums` (ordered as it stores it)."""
    key = (days.index(a[0]), changing.index(a[1]))
    if (days.index(b[0]), changing.index(b[1])) < key:
        a, b = b, a
    return f"Q|{a[0]}|{a[1]}|{b[0]}|{b[1]}"


def _changes_centred(changes: Mapping[str, Change], order: list[str], names: list[str],
                     days: list[str], changing: list[str]) -> dict[str, pl.Expr]:  # fmt: skip
    """The centred cross-products ``c_<a>_<b>`` (per segment) of each change regressor
    with the variables ``names`` and with each other, by bilinearity from the basic
    sums; ``order``: every regressor and ``y``, the order the names follow."""

    def s(z: Change) -> pl.Expr:
        return pl.sum_horizontal(w * pl.col(f"S|{d}|{r}") for (d, r), w in z.items())

    def p(z: Change, v: str) -> pl.Expr:
        return pl.sum_horizontal(w * pl.col(f"P|{d}|{r}|{v}") for (d, r), w in z.items())

    def pp(z: Change, u: Change) -> pl.Expr:
        return pl.sum_horizontal(wa * wb * pl.col(_cross(a, b, days, changing))
                                 for a, wa in z.items() for b, wb in u.items())  # fmt: skip

    def named(a: str, b: str) -> str:
        return f"c_{a}_{b}" if order.index(a) < order.index(b) else f"c_{b}_{a}"

    n = pl.col("n")
    out: dict[str, pl.Expr] = {}
    for o, z in changes.items():
        for v in names:
            out[named(o, v)] = p(z, v) - s(z) * pl.col(f"s_{v}") / n
    items = list(changes.items())
    for i, (o, z) in enumerate(items):
        for o2, u in items[i:]:
            out[named(o, o2)] = pp(z, u) - s(z) * s(u) / n
    return out


def change_fits(design_rows: pl.DataFrame, keys: list[str], xs: list[str], y: str,
                ends: pl.DataFrame, window_days: int, candidates: pl.DataFrame,
                changes: Mapping[str, Change],
                covariances: tuple[tuple[str, str], ...] = ()) -> pl.DataFrame:  # fmt: skip
    """Least squares of ``y`` on ``xs`` and the change regressors ``changes`` (name →
    combination of basic ones, :data:`Change`), one intercept per segment, per
    ``candidates`` row (keys, end_day and the change-day columns the combinations name,
    :data:`ONSET` first). Returns the candidates' columns, ``b_``/``se_`` of every
    regressor, ``cov_<a>_<b>`` of ``covariances``, ``n``, ``n_after_<day>`` (hours from
    each change day on), ``segments``, ``days``, ``readings``, ``dof`` and ``rss``."""
    names = [*xs, y]
    days = [d for d in (ONSET, PULSE_END) if d in candidates.columns]
    changing = list(dict.fromkeys(r for z in changes.values() for _, r in z))
    spread = window_sums(design_rows, keys, names, ends, window_days, lows=changing)
    at = [*keys, "end_day", *days]
    full = segment_sums(spread, keys).join(candidates.select(at), on=[*keys, "end_day"])
    for day in days:
        tail = _tails(spread, candidates, keys, day, names, changing)
        full = full.join(tail, on=[*keys, "segment", "end_day", day], how="left")
    # a segment before a change day has no tail: its sums from that day on are 0
    full = full.with_columns(pl.col(c).fill_null(0.0) for c in full.columns
                             if any(c.startswith(f"_{d}_") for d in days))  # fmt: skip
    full = full.with_columns(**_basic_sums(days, names, changing))
    order = [*xs, *changes, y]
    extra = _changes_centred(changes, order, names, days, changing)
    extra.update({f"n_after_{d}": pl.col(f"_{d}_n") for d in days})
    fits = centred(full, keys, names, ["end_day", *days], extra).join(
        days_with_data(spread, keys), on=[*keys, "end_day"],
    )  # fmt: skip
    regressors = [*xs, *changes]
    return solve(fits, regressors, y, covariances).select(
        *at, *[f"b_{x}" for x in regressors], *[f"se_{x}" for x in regressors],
        *[f"cov_{a}_{b}" for a, b in covariances], "n",
        *[pl.col(f"n_after_{d}").cast(pl.Int64) for d in days], "segments", "days",
        "readings", "dof", "rss",
    )  # fmt: skip


def candidate_onsets(ends: pl.DataFrame, keys: list[str], window_days: int,
                     offsets: list[int]) -> pl.DataFrame:  # fmt: skip
    """Per ``keys`` and end day of ``ends``, a row per candidate onset day (``onset_day``
    = the window's first day + each of ``offsets``)."""
    return ends.select(*keys, "end_day").unique().join(
        pl.DataFrame({"_k": offsets}, schema={"_k": pl.Int64}), how="cross"
    ).with_columns(onset_day=pl.col("end_day") - window_days + 1 + pl.col("_k")).drop("_k")


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
    candidates = candidate_onsets(ends, keys, window_days, offsets)
    changes = {onset_name(r): {(ONSET, r): 1.0} for r in ramps}
    return change_fits(design_rows, keys, xs, y, ends, window_days, candidates,
                       changes).rename({f"n_after_{ONSET}": "n_after"})  # fmt: skip


def pulse_fits(design_rows: pl.DataFrame, keys: list[str], xs: list[str], y: str,
               ends: pl.DataFrame, window_days: int, ramps: list[str], pulses: list[str],
               pairs: pl.DataFrame) -> pl.DataFrame:  # fmt: skip
    """Least squares of ``y`` on ``xs``, a pulse regressor per ``pulses`` (its
    coefficient: the change of the variable's from ``onset_day`` until ``pulse_end_day``,
    back after) and, per ``ramps``, a change regressor at each of the two days (free
    changes, e.g. of the leak rate), one intercept per segment, per ``pairs`` row (keys,
    end_day, onset_day, pulse_end_day > onset_day).

    Returns as :func:`onset_fits`, with ``pulse_end_day``, the regressors named by
    :func:`pulse_name`, :func:`onset_name` and :func:`end_name`, ``n_end`` (hours from
    the pulse's end on), and ``cov_<v>_<q_v>`` for each of ``pulses``: with ``b_<v>`` and
    ``b_<q_v>`` the variable's coefficient *during* the pulse and its standard error.
    """
    changes: dict[str, Change] = {
        **{onset_name(r): {(ONSET, r): 1.0} for r in ramps},
        **{end_name(r): {(PULSE_END, r): 1.0} for r in ramps},
        **{pulse_name(v): {(ONSET, v): 1.0, (PULSE_END, v): -1.0} for v in pulses},
    }
    covariances = tuple((v, pulse_name(v)) for v in pulses)
    return change_fits(design_rows, keys, xs, y, ends, window_days, pairs, changes,
                       covariances).rename({f"n_after_{ONSET}": "n_after",
                                            f"n_after_{PULSE_END}": "n_end"})  # fmt: skip


def during_pulse(fits: pl.DataFrame, v: str) -> tuple[pl.Expr, pl.Expr]:
    """``v``'s coefficient during the pulse of :func:`pulse_fits` rows (its coefficient
    outside plus the pulse's change) and its standard error."""
    q = pulse_name(v)
    variance = (pl.col(f"se_{v}") ** 2 + pl.col(f"se_{q}") ** 2
                + 2.0 * pl.col(f"cov_{v}_{q}")).clip(0.0, None)  # fmt: skip
    return pl.col(f"b_{v}") + pl.col(f"b_{q}"), variance.sqrt()


def stretches(fits: pl.DataFrame) -> list[pl.Expr]:
    """The usable hours of each stretch the change days of ``fits`` cut the window into:
    before and from the onset, or before, during and after a pulse."""
    before = pl.col("n") - pl.col("n_after")
    if "n_end" not in fits.columns:
        return [before, pl.col("n_after")]
    return [before, pl.col("n_after") - pl.col("n_end"), pl.col("n_end")]


def likeliest(candidates: pl.DataFrame, whole: pl.DataFrame, keys: list[str],
              changed: pl.Expr, min_hours: int) -> pl.DataFrame:  # fmt: skip
    """Per ``keys`` and end day, of the candidates (:func:`onset_fits` or
    :func:`pulse_fits` rows) with at least ``min_hours`` usable hours in each stretch
    (:func:`stretches`: fewer and the change there is not estimable, nor testable), the
    one with the least residual sum of squares — filtered first, so that a candidate too
    near the window's edge neither wins nor hides the best usable one. With ``bic``, its
    Bayesian information criterion less the whole-window fit's (``whole``: keys, end_day,
    rss), counting its ``changed`` coefficients and each change day::

        bic = n · ln(rss / rss_whole) + (changed + days) · ln(n)

    and ``onset_selected``: ``bic < 0`` (the change pays). The least ``bic`` of several
    models is the one to believe.
    """
    usable = pl.all_horizontal(h >= min_hours for h in stretches(candidates))
    days = 1 if "n_end" not in candidates.columns else 2
    best = candidates.filter(usable).sort("rss").group_by(*keys, "end_day").first()
    joined = best.join(whole.select(*keys, "end_day", _rss_whole=pl.col("rss")),
                       on=[*keys, "end_day"])  # fmt: skip
    # below 1 mL rms an hour both fits are exact (no gauge reads finer): no change to see
    floor = pl.col("n") * 1e-6
    gain = pl.col("n") * (pl.max_horizontal("_rss_whole", floor)
                          / pl.max_horizontal("rss", floor)).log()  # fmt: skip
    bic = (changed + days) * pl.col("n").cast(pl.Float64).log() - gain
    return joined.with_columns(bic=bic).with_columns(
        onset_selected=(pl.col("bic") < 0).fill_null(False)
    ).drop("_rss_whole")
