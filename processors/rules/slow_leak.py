"""Slow leak: statistical inventory reconciliation (SIR) of each tank over 30 days.

A leak takes litres per *hour*, whatever is sold; a dispenser's meter error takes a share
of what is *sold*; a delivery's declared-vs-true error is a step; gauge noise is random
per reading. Per tank and local day, :func:`processors.wetstock.window_fits` fits over
the 30 days ending that day, hour by hour, ``measured + sold = a_segment − leak · t +
gain · sold`` (one intercept per stretch between deliveries, so deliveries drop out), and
the test reads the leak rate and its standard error off it:

* ``fail``: the data are precise enough (standard error ≤ threshold / z) and the rate
  exceeds the threshold — or, less precise, its lower confidence bound does;
* ``pass``: precise enough and at most the threshold, or the upper bound is below the
  detection rate;
* ``inconclusive``: too few days with gauge data, or too noisy to decide.

With a standard error of at most threshold / z and the threshold half the detection rate,
a tank that does not leak fails with probability ≤ the false-alarm rate and one leaking
at the detection rate fails with probability ≥ 1 − that rate (EPA SIR protocol).

Findings are monthly, as SIR reports are: one per tank and calendar month (Asia/Shanghai)
whose tests failed on some day — from the start of the first failing test's window to
the end of its last failing day, with the latest failing test as evidence — or, with no
failure, whose tests were inconclusive on ``slow_leak_inconclusive_days`` days (``low``).
"""

from __future__ import annotations

from datetime import timedelta
from statistics import NormalDist
from typing import Any

import polars as pl

from fueltrace.settings import Settings
from processors import wetstock
from processors.onset import likeliest, onset_days, onset_fits
from processors.rules.base import Frames, Reader, Rule, Scope, findings, no_findings

#: The SIR window: 30 days, the EPA's monthly monitoring period (40 CFR 280.41).
WINDOW_DAYS = 30
#: Fewer residual degrees of freedom than this and the variance estimate is meaningless.
MIN_DOF = 48
#: Candidate onsets: every day of the window but the first, the last with 6 days after it
#: (24 candidates, tested together at half the false-alarm rate: :func:`split_alpha`).
ONSETS = onset_days(WINDOW_DAYS, 1, 6)
#: An onset test needs this many usable hours before the onset and as many after.
ONSET_MIN_HOURS = 72
METHOD = "sir_hourly_segment_regression"

#: Per scoped tank and hour with readings since ``load_from``: the mean reading (litres at
#: 20 °C), its mean instant (hours since the epoch), the mean over the readings of the
#: tank's cumulative sales (litres at 20 °C) since ``load_from`` up to each reading, and
#: the mean gauge temperature (°C).
HOURS_SQL = """
    WITH r AS (
        SELECT t.station_id, t.tank_id, t.read_at, t.volume_20_l, g.temperature_c,
               (epoch_ms(t.read_at) - epoch_ms(s.load_from)) / 1000.0 AS ts
        FROM reading_std t JOIN scope s ON s.station_id = t.station_id
        JOIN tank_reading g ON g.station_id = t.station_id AND g.tank_id = t.tank_id
         AND g.read_at = t.read_at
        WHERE t.read_at >= s.load_from AND g.read_at >= s.load_from
    ), x AS (  -- seconds since load_from
        SELECT t.station_id, t.tank_id, t.volume_20_l AS v,
               (epoch_ms(x.started_at) - epoch_ms(s.load_from)) / 1000.0 AS t0,
               (epoch_ms(t."at") - epoch_ms(s.load_from)) / 1000.0 AS t1
        FROM sale_std t JOIN scope s ON s.station_id = t.station_id
        JOIN sale x ON x.station_id = t.station_id AND x.txn_id = t.txn_id
        WHERE t."at" >= s.load_from
    ), e AS (  -- a sale draws its litres at a steady flow from its start to its end
        SELECT station_id, tank_id, t1 AS ts, v AS sold, 0.0 AS flow, 0.0 AS flow_t0
        FROM x WHERE t1 <= t0
        UNION ALL
        SELECT station_id, tank_id, t0, 0.0, v / (t1 - t0), v * t0 / (t1 - t0) FROM x
        WHERE t1 > t0
        UNION ALL
        SELECT station_id, tank_id, t1, v, -v / (t1 - t0), -v * t0 / (t1 - t0) FROM x
        WHERE t1 > t0
    ), c AS (  -- up to each instant: litres of ended sales; Σ flow and Σ flow × start of
               -- those under way, whose litres drawn by t are t × Σ flow − Σ flow × start
        SELECT station_id, tank_id, ts, sum(sold) OVER w AS sold, sum(flow) OVER w AS flow,
               sum(flow_t0) OVER w AS flow_t0
        FROM e WINDOW w AS (PARTITION BY station_id, tank_id ORDER BY ts)
    )
    SELECT r.station_id, r.tank_id, floor(epoch_ms(r.read_at) / 3600000)::BIGINT AS hour,
           count(*) AS readings, avg(epoch_ms(r.read_at)) / 3600000.0 AS t_h,
           avg(r.volume_20_l) AS measured_20_l,
           avg(coalesce(c.sold + c.flow * r.ts - c.flow_t0, 0.0)) AS sold_20_l,
           avg(r.temperature_c) AS temperature_c
    FROM r ASOF LEFT JOIN c
      ON c.station_id = r.station_id AND c.tank_id = r.tank_id AND r.ts >= c.ts
    GROUP BY ALL ORDER BY ALL
"""
#: Per scoped tank, dispenser and hour since ``load_from``: litres at 20 °C sold.
HOURLY_SALES_SQL = """
    SELECT t.station_id, t.tank_id, x.dispenser_id,
           floor(epoch_ms(t."at") / 3600000)::BIGINT AS hour,
           sum(t.volume_20_l) AS sold_20_l, count(*) AS sales
    FROM sale_std t JOIN scope s ON s.station_id = t.station_id
    JOIN sale x ON x.station_id = t.station_id AND x.txn_id = t.txn_id
    WHERE t."at" >= s.load_from
    GROUP BY ALL ORDER BY ALL
"""
#: Deliveries into scoped tanks that may disturb an hour since ``load_from``.
DELIVERIES_SQL = """
    SELECT t.station_id, t.tank_id, t.delivery_id, t.started_at, t.ended_at,
           coalesce(t.volume_20_l, t.volume_l) AS volume_20_l
    FROM delivery t JOIN scope s ON s.station_id = t.station_id
    WHERE t.ended_at >= s.load_from - INTERVAL 1 DAY
"""


def load(reader: Reader) -> Frames:
    return {
        "hours": reader.sql(HOURS_SQL),
        "sales": reader.sql(HOURLY_SALES_SQL),
        "deliveries": reader.sql(DELIVERIES_SQL),
    }


def z_score(false_alarm_pct: float) -> float:
    """The one-sided normal quantile for a false-alarm rate in %."""
    return NormalDist().inv_cdf(1.0 - false_alarm_pct / 100.0)


def evaluate(frames: Frames, settings: Settings, scope: Scope) -> pl.DataFrame:
    """Each tank's SIR test, with ``result``, per window end day from the day before
    ``since`` on — and, for a tank whose test there did not pass, on every earlier day of
    the months concerned (to find where its monthly episode began). A tank that passes
    costs one or two fits a run, not a month of them."""
    hours, sales = frames["hours"], frames["sales"]
    ends = wetstock.end_days(hours, wetstock.TANK, scope.stations, scope.now, WINDOW_DAYS)
    recent, earlier = wetstock.split_recent(ends, scope.stations)

    def run(days: pl.DataFrame) -> pl.DataFrame:
        rows = wetstock.design(wetstock.within(hours, days, WINDOW_DAYS),
                               wetstock.within(sales, days, WINDOW_DAYS), frames["deliveries"])
        fits = wetstock.window_fits(rows, wetstock.TANK, wetstock.XS, "y_20_l", days,
                                    WINDOW_DAYS)  # fmt: skip
        onsets = onset_fits(rows, wetstock.TANK, wetstock.XS, "y_20_l", days, WINDOW_DAYS,
                            ["t_h"], ONSETS)  # fmt: skip
        best = likeliest(onsets, fits, wetstock.TANK, pl.lit(1), ONSET_MIN_HOURS)
        return with_onset(classify(fits, settings), classify_onsets(best, settings))

    first = run(recent)
    doubtful = first.filter(pl.col("result") != "pass").select(wetstock.TANK).unique()
    if doubtful.is_empty():
        return first
    return pl.concat([first, run(earlier.join(doubtful, on=wetstock.TANK))])


def split_alpha(false_alarm_pct: float) -> tuple[float, float]:
    """The one-sided z of the whole-window test and of each onset test: each family gets
    half the false-alarm rate, the onset half shared by its candidates (Bonferroni), so a
    tank that does not leak fails either with probability ≤ ``false_alarm_pct``."""
    half = false_alarm_pct / 2
    return z_score(half), z_score(half / len(ONSETS))


def split_alpha_with_pulses(false_alarm_pct: float, pulse_pairs: int) -> tuple[float, float, float]:
    """The one-sided z of the whole-window test, of each onset test and of each pulse test
    (a change on one day, reverted on a later one: ``pulse_pairs`` candidate pairs): the
    whole-window test keeps half the false-alarm rate, and the onset and the pulse
    families share the other half equally, each split among its candidates
    (Bonferroni), so that a dispenser or tank that is sound fails any of them with
    probability ≤ ``false_alarm_pct``."""
    quarter = false_alarm_pct / 4
    return (z_score(2 * quarter), z_score(quarter / len(ONSETS)),
            z_score(quarter / pulse_pairs))  # fmt: skip


def classify(fits: pl.DataFrame, settings: Settings) -> pl.DataFrame:
    """SIR results from :func:`processors.wetstock.window_fits` rows."""
    z, _ = split_alpha(settings.slow_leak_false_alarm_pct)
    threshold = settings.slow_leak_threshold_l_h
    rate, se = pl.col("leak_rate_l_h"), pl.col("standard_error_l_h")
    finite = [pl.when(c.is_finite()).then(c) for c in (-pl.col("b_t_h"), pl.col("se_t_h"))]
    out = fits.with_columns(
        leak_rate_l_h=finite[0], standard_error_l_h=finite[1]  # a singular fit: null
    ).with_columns(lower_l_h=rate - z * se, upper_l_h=rate + z * se)
    valid = (
        (pl.col("days") >= settings.wetstock_min_days)
        & (pl.col("dof") >= MIN_DOF)
        & se.is_not_null()
        & rate.is_not_null()
    ).fill_null(False)
    precise = se <= threshold / z
    result = (
        pl.when(~valid).then(pl.lit("inconclusive"))
        .when(precise & (rate > threshold)).then(pl.lit("fail"))
        .when(precise).then(pl.lit("pass"))
        .when(pl.col("lower_l_h") > threshold).then(pl.lit("fail"))
        .when(pl.col("upper_l_h") < settings.slow_leak_detection_rate_l_h).then(pl.lit("pass"))
        .otherwise(pl.lit("inconclusive"))
    )  # fmt: skip
    return out.with_columns(result=result.fill_null("inconclusive"))


def classify_onsets(fits: pl.DataFrame, settings: Settings) -> pl.DataFrame:
    """Per tank and end day, the likeliest onset (:func:`processors.onset.likeliest` rows,
    ramp ``t_h``, chosen among the onsets with ``ONSET_MIN_HOURS`` on both sides):
    onset_day, onset_rate_l_h (the rate added from that day on), onset_standard_error_l_h,
    onset_lower_l_h, and ``onset_fails``: the onset model is selected and that bound
    exceeds the threshold."""
    _, z = split_alpha(settings.slow_leak_false_alarm_pct)
    rate = pl.when(pl.col("b_o_t_h").is_finite()).then(-pl.col("b_o_t_h"))
    se = pl.when(pl.col("se_o_t_h").is_finite()).then(pl.col("se_o_t_h"))
    valid = (pl.col("days") >= settings.wetstock_min_days) & (pl.col("dof") >= MIN_DOF)
    tests = fits.with_columns(onset_rate_l_h=rate, onset_standard_error_l_h=se).with_columns(
        onset_lower_l_h=pl.col("onset_rate_l_h") - z * pl.col("onset_standard_error_l_h")
    ).filter(valid & pl.col("onset_lower_l_h").is_not_null() & pl.col("onset_selected"))
    return tests.select(
        *wetstock.TANK, "end_day", "onset_day", "onset_rate_l_h", "onset_standard_error_l_h",
        "onset_lower_l_h",
        onset_fails=pl.col("onset_lower_l_h") > settings.slow_leak_threshold_l_h,
    )  # fmt: skip


def with_onset(tests: pl.DataFrame, onsets: pl.DataFrame) -> pl.DataFrame:
    """The whole-window ``tests`` with the best onset test of the same tank and end day:
    ``result`` is ``fail`` if either fails; ``failed_by`` says which is the evidence — the
    onset test when it fails: it models the change the whole window cannot, and a leak
    present all through the window adds nothing at any onset."""
    out = tests.join(onsets, on=[*wetstock.TANK, "end_day"], how="left")
    onset_fails = pl.col("onset_fails").fill_null(False)
    return out.with_columns(
        failed_by=pl.when(onset_fails).then(pl.lit("onset"))
        .when(pl.col("result") == "fail").then(pl.lit("window")),
        result=pl.when(onset_fails).then(pl.lit("fail")).otherwise(pl.col("result")),
    ).drop("onset_fails")  # fmt: skip


def monthly_episodes(tests: pl.DataFrame, keys: list[str], flagged: pl.Expr,
                     window_days: int) -> pl.DataFrame:  # fmt: skip
    """The flagged window tests grouped into one episode per ``keys`` and calendar month of
    the window end day: ``first_day``/``last_day`` (end days, local), ``flagged_days``,
    ``window_start`` (the start of the first flagged test's window: stable as later days
    come in), ``window_end`` (the end of the last flagged day), and the last flagged test's
    columns (its evidence)."""
    marked = tests.filter(flagged).with_columns(
        _month=wetstock.day_date(pl.col("end_day")).dt.month_start()
    )
    by = [*keys, "_month"]
    return marked.sort("end_day").group_by(by).agg(
        pl.all().exclude(by).last(),
        first_day=pl.col("end_day").first(), flagged_days=pl.len().cast(pl.Int64),
    ).with_columns(
        last_day=pl.col("end_day"),
        window_start=wetstock.day_start(pl.col("first_day") - window_days + 1),
        window_end=wetstock.day_start(pl.col("end_day") + 1),
    ).drop("_month")  # fmt: skip


def detect(frames: Frames, settings: Settings, scope: Scope) -> pl.DataFrame:
    results = evaluate(frames, settings, scope)
    if results.is_empty():
        return no_findings()
    keys = wetstock.TANK
    failed = monthly_episodes(results, keys, pl.col("result") == "fail", WINDOW_DAYS)
    unsure = monthly_episodes(
        results, keys, pl.col("result") == "inconclusive", WINDOW_DAYS
    ).filter(pl.col("flagged_days") >= settings.slow_leak_inconclusive_days)
    month = wetstock.day_date(pl.col("last_day")).dt.month_start()
    unsure = unsure.join(failed.select(*keys, month.alias("_m")),
                         left_on=[*keys, month], right_on=[*keys, "_m"], how="anti")  # fmt: skip
    episodes = pl.concat([failed, unsure], how="vertical_relaxed")
    by_onset = pl.col("failed_by") == "onset"
    lower = pl.when(by_onset).then(pl.col("onset_lower_l_h")).otherwise(pl.col("lower_l_h"))
    critical = lower >= settings.slow_leak_critical_l_h
    onset_hours = (pl.col("last_day") + 1 - pl.col("onset_day")) * 24
    loss = pl.when(by_onset).then(pl.col("onset_rate_l_h") * onset_hours).otherwise(
        pl.col("leak_rate_l_h") * WINDOW_DAYS * 24
    )
    episodes = episodes.with_columns(
        subject=pl.col("tank_id"),
        severity=pl.when(pl.col("result") == "inconclusive").then(pl.lit("low"))
        .when(critical).then(pl.lit("critical")).otherwise(pl.lit("high")),
    )  # fmt: skip
    return findings(episodes, [
        "tank_id", "result", pl.lit(METHOD).alias("method"),
        "leak_rate_l_h", "standard_error_l_h", "lower_l_h", "upper_l_h",
        pl.lit(100.0 - settings.slow_leak_false_alarm_pct).alias("confidence_pct"),
        pl.lit(settings.slow_leak_threshold_l_h).alias("threshold_l_h"),
        pl.lit(settings.slow_leak_detection_rate_l_h).alias("detection_rate_l_h"),
        pl.col("failed_by").alias("test"),
        wetstock.day_date(pl.col("onset_day")).alias("onset_day"), "onset_rate_l_h",
        "onset_standard_error_l_h", "onset_lower_l_h", loss.alias("estimated_loss_20_l"),
        pl.lit(WINDOW_DAYS).alias("window_days"), "days", pl.col("n").alias("hours"),
        "readings", "segments",
        wetstock.day_start(pl.col("last_day") - WINDOW_DAYS + 1).alias("test_start_at"),
        wetstock.day_start(pl.col("last_day") + 1).alias("test_end_at"),
        wetstock.day_date(pl.col("first_day")).alias("first_day"),
        wetstock.day_date(pl.col("last_day")).alias("last_day"),
        pl.col("flagged_days").alias("result_days"),
    ])  # fmt: skip


def _l_h(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def describe(e: dict[str, Any]) -> str:
    test = (f"estimated leak {_l_h(e['leak_rate_l_h'])} L/h ± {_l_h(e['standard_error_l_h'])} "
            f"(standard error; {e['confidence_pct']:.0f} % bounds {_l_h(e['lower_l_h'])} to "
            f"{_l_h(e['upper_l_h'])} L/h) over the {e['window_days']} days to {e['last_day']} "
            f"({e['days']} days, {e['hours']} hours of gauge data, {e['segments']} stretches "
            f"between deliveries)")  # fmt: skip
    if e["result"] == "fail" and e.get("test") == "onset":
        return (f"Tank {e['tank_id']}: statistical inventory reconciliation failed on "
                f"{e['result_days']} day(s) from {e['first_day']} to {e['last_day']}: a leak "
                f"starting about {e['onset_day']} at {_l_h(e['onset_rate_l_h'])} L/h ± "
                f"{_l_h(e['onset_standard_error_l_h'])} (standard error; lower bound "
                f"{_l_h(e['onset_lower_l_h'])} L/h, above the {e['threshold_l_h']:.2f} L/h "
                f"threshold; the onset tests together at {e['confidence_pct']:.0f} % "
                f"confidence) in the {e['window_days']} days to {e['last_day']}; about "
                f"{e['estimated_loss_20_l']:.0f} L at 20 °C lost since. Have the tank and its "
                f"lines tightness-tested.")  # fmt: skip
    if e["result"] == "fail":
        return (f"Tank {e['tank_id']}: statistical inventory reconciliation failed on "
                f"{e['result_days']} day(s) from {e['first_day']} to {e['last_day']}: {test}, "
                f"above the {e['threshold_l_h']:.2f} L/h threshold; about "
                f"{e['estimated_loss_20_l']:.0f} L at 20 °C lost in the window. Have the tank "
                f"and its lines tightness-tested.")  # fmt: skip
    return (f"Tank {e['tank_id']}: statistical inventory reconciliation inconclusive on "
            f"{e['result_days']} day(s) from {e['first_day']} to {e['last_day']}: {test}; "
            f"cannot tell a {e['detection_rate_l_h']:.2f} L/h leak from none. Check the tank "
            f"gauge and the completeness of sales and delivery records.")  # fmt: skip


RULE = Rule(
    name="slow_leak",
    title="Slow leak (statistical inventory reconciliation)",
    title_zh="油罐渗漏(统计库存核对)",
    load=load,
    detect=detect,
    describe=describe,
    # A month's episode is recomputed whole: from the first of the month before ``since``'s
    # day, whose first test's window starts 29 days earlier (+ a day for deliveries).
    lookback=timedelta(days=WINDOW_DAYS + 32),
)
