"""All settings, read from the environment in this one place (``FUELTRACE_…``).

Each field documents its default and why; ``fueltrace settings`` prints them and a
test checks the README lists every one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fueltrace import failpoints

#: The SPEC's licence kinds (the ``kind`` enum of schemas/facility.avsc).
LicenceKind = Literal["retail_approval", "hazardous_chemicals", "business_licence",
                      "environmental_approval"]  # fmt: skip
_HOST = r"\s*([A-Za-z_]+://)?(\[[0-9A-Fa-f:.]+\]|[^\s,:/\[\]]+)(:\d{1,5})?\s*"
#: [PROTOCOL://]host[:port] or [IPv6]:port, comma-separated: what Kafka clients take.
_BOOTSTRAP = rf"^{_HOST}(,{_HOST})*$"


#: The least DuckDB memory limit fueltrace accepts: a 20 000-record batch and a checkpoint
#: of the 16 MiB log needed ≈ 48 MB (tests/warehouse/test_memory_limit.py).
MIN_DB_MEMORY_BYTES = 64 * 1000**2
_UNITS = {"KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
          "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4}  # fmt: skip


def size_bytes(size: str) -> int:
    """Bytes of a size as DuckDB takes it (``128MB``, ``1.5 GiB``: :data:`_SIZE`)."""
    number, unit = re.fullmatch(r"([0-9.]+)\s?([KMGT]i?B)", size).groups()  # type: ignore[union-attr]
    return int(float(number) * _UNITS[unit])


#: A memory size DuckDB takes.
_SIZE = r"^[1-9][0-9]{0,8}(\.[0-9]+)?\s?(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$"
_SIZE_ACCEPTS = "a size: 128MB, 1.5GB, 512MiB"


class Settings(BaseSettings):
    """Frozen settings of one fueltrace process."""

    model_config = SettingsConfigDict(env_prefix="FUELTRACE_", frozen=True, extra="ignore",
                                      allow_inf_nan=False)  # no setting means infinity

    bootstrap: str | None = Field(
        default=None, pattern=_BOOTSTRAP, examples=["kafka1:9092,kafka2:9092"],
        json_schema_extra={"accepts": "host:port[,host:port…] (unset: the embedded broker)"},
        description="Kafka bootstrap servers (host:port,…). Unset: use the embedded broker "
        "that `fueltrace broker` runs (its address is read from FUELTRACE_STATE_DIR).",
    )
    db: Path = Field(
        default=Path("data/fueltrace.duckdb"),
        description="DuckDB warehouse file. Default under ./data so a checkout is self-contained.",
    )
    db_memory_limit: str = Field(
        default="128MB", pattern=_SIZE, json_schema_extra={"accepts": _SIZE_ACCEPTS},
        description="DuckDB's memory limit in a process that writes the warehouse (ingest, "
        "serve, demo), outside the analyses: DuckDB keeps every table block it wrote or read "
        "cached up to its limit, so with its own default (80 % of RAM) a draining backlog "
        "grew the ingest by 33 MiB per million records; within this limit the process stays "
        "flat however large the warehouse grows (older blocks are re-read from the file). "
        "128 MB holds what loads and API queries touch; measured in docs/BENCHMARKS.md.",
    )
    analysis_memory_limit: str = Field(
        default="", pattern=rf"{_SIZE}|^$", json_schema_extra={"accepts": _SIZE_ACCEPTS
                                                               + ", or empty"},
        description="DuckDB's memory limit while the analyses run (they read weeks of tank "
        "readings at once; 64 MB ran out). Empty: DuckDB's default, 80 % of RAM.",
    )
    state_dir: Path = Field(
        default=Path("data"),
        description="Where the embedded broker records its address and log.",
    )
    topic_prefix: str = Field(
        default="fuel", pattern=r"^[A-Za-z0-9._-]{1,200}$",
        json_schema_extra={"accepts": "letters, digits, '.', '_' and '-' (Kafka topic names)"},
        description="Prefix of every topic name (fuel.sale, fuel.dead-letter, …). Change it to "
        "run several pipelines, or tests, on one broker.",
    )
    partitions: int = Field(
        default=4,
        ge=1,
        description="Partitions per topic when fueltrace creates it. 4 matches what the "
        "embedded broker auto-creates; more partitions let a broker spread a city's backlog.",
    )
    group_id: str = Field(
        default="fueltrace-ingest", min_length=1,
        description="Kafka consumer group of the ingest. The offsets that count are in the "
        "warehouse; the group's own offsets are committed after each load for lag tooling.",
    )
    session_timeout_ms: int = Field(
        default=2000, gt=0,
        description="Consumer-group session timeout. The embedded Tansu holds a JoinGroup for "
        "half of it, so 2000 ms keeps start-up near 1 s; use 10000+ on real Kafka.",
    )
    heartbeat_interval_ms: int = Field(
        default=500, gt=0, description="Consumer heartbeat; a quarter of the session timeout."
    )
    batch_max_records: int = Field(
        default=20000,
        ge=1,
        description="A micro-batch is loaded once it holds this many records (a batch message "
        "counts whole)… Bounds memory and the size of one warehouse transaction.",
    )
    batch_max_ms: int = Field(
        default=500,
        ge=1,
        description="…or when this many milliseconds passed since it started (bounds latency: "
        "at 500 ms a record is queryable within 2 s at p95 under a steady 1 000 records/s).",
    )
    broker_timeout_s: float = Field(
        default=15.0, gt=0,
        description="How long a command waits for the broker before saying it is unavailable.",
    )
    max_future_s: int = Field(
        default=300, ge=0,
        description="A timestamp may be this far ahead of the ingest clock (device clock skew); "
        "later is rejected as timestamp_in_future. 5 minutes, the usual clock-skew allowance "
        "(Kerberos uses the same).",
    )
    max_flow_l_per_min: float = Field(
        default=150.0, gt=0,
        description="Highest physically possible nozzle flow. Car nozzles deliver ≤ 50 L/min "
        "(GB/T 9081), high-flow truck diesel nozzles up to ~130 L/min; 150 leaves margin.",
    )
    totalizer_tolerance_l: float = Field(
        default=0.02, ge=0,
        description="Allowed |(totalizer_end − totalizer_start) − volume_l|: dispensers display "
        "0.01 L, so two rounded readings differ by at most 0.02 L.",
    )
    amount_tolerance_fen: int = Field(
        default=1, ge=0,
        description="Allowed |amount_fen − unit_price_fen × volume_l| beyond rounding: one fen, "
        "the display unit of the amount.",
    )
    transit_loss_tolerance_pct: float = Field(
        default=0.5, ge=0,
        description="Dispatch vs delivery: allowed loss of volume at 20 °C, % of the dispatched "
        "volume. GB 11085-1989 allows ≤ 0.24 % road-transport loss for gasoline (less for "
        "diesel); the rest covers two meters of class 0.3 (JJG 443) at either end.",
    )
    transit_gain_tolerance_pct: float = Field(
        default=0.3, ge=0,
        description="Dispatch vs delivery: allowed *gain* at 20 °C, % of the dispatched volume "
        "(a delivery larger than its load): meter error only (class 0.3).",
    )
    density_tolerance_kg_m3: float = Field(
        default=2.0, ge=0,
        description="Dispatch vs delivery: allowed difference of density at 20 °C. GB/T 1884 "
        "(hydrometer) reproducibility is 1.2 kg/m³ for light products; a wider gap is a classic "
        "sign of adulteration (solvent or lighter stock blended in).",
    )
    gauge_rise_tolerance_pct: float = Field(
        default=1.0, ge=0,
        description="Declared delivery vs the rise the tank gauge saw (plus sales during "
        "unloading), % of the declared volume at 20 °C: ATG accuracy (±0.5 %, OIML R 85 "
        "class) at both ends of the unloading window.",
    )
    gauge_rise_min_l: float = Field(
        default=50.0, ge=0,
        description="…and never less than this many litres (gauge resolution on a small drop).",
    )
    delivery_overdue_h: float = Field(
        default=24.0, gt=0,
        description="A dispatch no station reported receiving this many hours after it left "
        "is an open end (a candidate diversion). Liaoning's road trips are under 12 h.",
    )
    gauge_window_min: float = Field(
        default=120.0, gt=0,
        description="How far before an unloading starts / after it ends to look for the tank "
        "readings that bracket it (ATGs report every 1–5 min; 2 h tolerates outages).",
    )
    analysis_interval_s: float = Field(
        default=5.0, ge=0,
        description="A running `fueltrace ingest` or `serve` brings the analyses (lineage, "
        "delivery checks, anomaly rules) up to date at most this often, beside the loads — "
        "and after a run of d seconds waits at least 2·d, so the analyses never take more "
        "than half of one core; `--until-idle` once at the end. 5 s: a finding that one "
        "record shows is flagged within 10 s (the hardening issue's target).",
    )
    metrics_port: int = Field(
        default=9308, ge=0, le=65535,
        description="Port of /metrics while `fueltrace ingest` runs (0 = off).",
    )
    # --- the HTTP service (`fueltrace serve`): API, station gateway ---
    http_host: str = Field(
        default="127.0.0.1", min_length=1,
        description="Address `fueltrace serve` listens on. Loopback by default: expose it "
        "deliberately (0.0.0.0 behind a TLS-terminating proxy), never by accident.",
    )
    http_port: int = Field(
        default=8080, ge=0, le=65535,
        description="Port of `fueltrace serve` (API, web page, /metrics). 8080: unprivileged.",
    )
    api_query_timeout_s: float = Field(
        default=10.0, gt=0,
        description="A regulator API query running longer is interrupted and answered 503 "
        "query_timeout: one runaway filter must not hold the warehouse for everyone. 10 s is "
        "far above an indexed look-up (~50 ms) and a page of anomalies.",
    )
    api_report_timeout_s: float = Field(
        default=120.0, gt=0,
        description="The same bound for the reports that read a year of data (the annual "
        "inspection, a recall with every sale, the audit export).",
    )
    api_max_page: int = Field(
        default=1000, ge=1,
        description="Largest `limit` of a paginated API answer; clients page with `offset`. "
        "1000 rows of anomalies is ~1 MB of JSON.",
    )
    gateway_max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024,
        description="Largest request body the service accepts (413 beyond). 1 MiB holds about "
        "2,500 sales or 4,000 tank readings: a station sends a day's backlog in a few requests.",
    )
    gateway_max_records: int = Field(
        default=5000, ge=1,
        description="Most records in one gateway batch (one Kafka message per 500 of them).",
    )
    gateway_rate_per_s: float = Field(
        default=5.0, gt=0,
        description="Gateway requests per second a station (or depot) may sustain: a token "
        "bucket per sender; beyond it 429 with Retry-After. A station's normal feed is a "
        "request every few seconds; 5/s leaves room for a backlog upload.",
    )
    gateway_burst: int = Field(
        default=20, ge=1,
        description="…and the bucket's size: requests a sender may make at once after a pause.",
    )
    gateway_idempotency_ttl_h: float = Field(
        default=24.0, gt=0,
        description="How long the gateway remembers an Idempotency-Key's answer. A gateway "
        "retries within minutes; after a day a resend is a new upload whose records the "
        "warehouse still de-duplicates by natural key.",
    )
    scale_out: bool = Field(
        default=False,
        description="Several `fueltrace ingest` workers share the consumer group, each with "
        "its own FUELTRACE_DB shard; a partition moving between them starts at the group's "
        "committed offset (docs/scale-out.md). Off: one ingest process, and the warehouse's "
        "own offsets alone say where to read (a new warehouse file re-reads every topic).",
    )
    silent_station_h: float = Field(
        default=2.0,
        gt=0,
        description="Operations: a station with no record for this many hours counts in "
        "fueltrace_stations_silent. Tank gauges report every 1–5 min around the clock, so "
        "2 h is 24+ missed readings, not a blip, while a gateway's usual outages (minutes) "
        "upload their backlog well within it.",
    )
    log_level: str = Field(
        default="WARNING",
        pattern="(?i)^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$",
        description="Log level of the entry points: DEBUG, INFO, WARNING, ERROR (`-v` = "
        "DEBUG). WARNING keeps a quiet pipeline quiet; INFO adds a line per batch.",
    )
    log_format: str = Field(
        default="text",
        pattern="^(text|json)$",
        description="`text`: one `key=value` line per event; `json`: one JSON object per "
        "line, for a log shipper (Loki, Elasticsearch).",
    )
    # --- anomaly rules: wetstock (inventory_imbalance, slow_leak, persistent_gain) ---
    imbalance_tolerance_pct: float = Field(
        default=0.5,
        gt=0,
        description="Daily reconciliation: allowed |closing − book| per tank and day, % of the "
        "day's sales at 20 °C. The wetstock trade rule: investigate a variance beyond ±0.5 % "
        "of throughput.",
    )
    imbalance_tolerance_min_l: float = Field(
        default=40.0,
        ge=0,
        description="…and never less than this many litres at 20 °C: two gauge readings "
        "(opening, closing) of ±1 mm level accuracy, at ~21 L/mm across the middle of a "
        "50 m³ horizontal tank (Ø 3.0 m × 7 m), are ±42 L together.",
    )
    imbalance_reading_age_min: float = Field(
        default=120.0,
        gt=0,
        le=720,  # the rule reads two days back: the day before ``since`` and its opening
        description="A day's opening (closing) stock is the last undisturbed gauge reading "
        "at or before local midnight, at most this old; older, the day is inconclusive. ATGs "
        "report every 1–5 min; 2 h also covers a delivery in progress at midnight.",
    )
    imbalance_high_factor: float = Field(
        default=3.0,
        ge=1,
        description="An imbalance beyond this many tolerances is `high` (below: `medium`): "
        "three times the sum of gauge and meter error allowances is beyond any honest "
        "combination of them.",
    )
    imbalance_critical_factor: float = Field(
        default=10.0,
        ge=1,
        description="…and beyond this many tolerances `critical`: at the floor, 400 L, a "
        "compartment's worth of fuel unaccounted for in a day.",
    )
    slow_leak_threshold_l_h: float = Field(
        default=0.19,
        gt=0,
        description="SIR leak threshold, L/h at 20 °C: a 30-day test fails when the estimated "
        "leak rate exceeds it (with the precision below). Half the detection rate, as the EPA "
        "SIR evaluation protocol (EPA/530/UST-90/007) sets it.",
    )
    slow_leak_detection_rate_l_h: float = Field(
        default=0.38,
        gt=0,
        description="SIR detection rate, L/h at 20 °C: 0.1 gal/h, what certified commercial "
        "SIR detects with 99 % probability (the EPA asks for 0.2 gal/h = 0.76 L/h at 95 %). A "
        "test too imprecise to tell this rate from the threshold is inconclusive.",
    )
    slow_leak_false_alarm_pct: float = Field(
        default=1.0,
        gt=0,
        lt=50,
        description="SIR false-alarm rate per test, %: half goes to the whole-window test "
        "(1 %: z = 2.58), half to the onset tests, shared by their 24 candidates (z = 3.53). "
        "1 %, the certified commercial figure (the EPA allows 5 %).",
    )
    slow_leak_critical_l_h: float = Field(
        default=0.76,
        gt=0,
        description="A failed SIR test whose lower confidence bound is at least this many L/h "
        "is `critical` (else `high`): a tank certainly leaking faster than the EPA's SIR "
        "detection rate, 0.2 gal/h.",
    )
    slow_leak_inconclusive_days: int = Field(
        default=10,
        ge=1,
        description="A tank whose SIR test is inconclusive on this many days of a month "
        "(none failed) gets a `low` finding: EPA SIR practice treats an unresolved "
        "inconclusive month as a failure to monitor.",
    )
    wetstock_min_days: int = Field(
        default=20,
        ge=2,
        description="SIR tests (slow leak, persistent gain) need usable gauge hours on at least "
        "this many days of their 30-day window, else they are inconclusive: two thirds of "
        "the month, so a week of gauge outage still leaves a valid test.",
    )
    persistent_gain_threshold_pct: float = Field(
        default=0.3,
        gt=0,
        description="A dispenser records more than left the tanks when the lower confidence "
        "bound of its gain exceeds this, % of its sales: the legal maximum permissible error "
        "of a fuel dispenser, ±0.3 % (JJG 443-2015, OIML R 117 class 0.3).",
    )
    persistent_gain_false_alarm_pct: float = Field(
        default=1.0,
        gt=0,
        lt=50,
        description="Persistent gain: false-alarm rate per test for a meter exactly at the "
        "legal limit, %: split as for the slow leak between the whole-window test (1 %: "
        "z = 2.58) and the onset tests (z = 3.53).",
    )
    persistent_gain_critical_pct: float = Field(
        default=0.6,
        gt=0,
        description="A persistent gain whose lower bound is at least this, % of sales, is "
        "`critical` (else `high`): twice the legal error, beyond any drift of an honest meter.",
    )
    # --- end wetstock ---
    # --- anomaly rules: supply chain (deliveries, dispatches, untraced fuel, depots) ---
    untraced_rise_min_l: float = Field(
        default=500.0,
        gt=0,
        description="untraced_level_rise: a tank's net rise (level change plus the sales "
        "drawn meanwhile, litres at 20 °C) with no delivery around it is reported from this "
        "size on. Off-book fuel comes by the tanker compartment (5–10 m³) or at the least a "
        "1 m³ IBC tote; 500 L is half a tote and 10× FUELTRACE_GAUGE_RISE_MIN_L, the gauge's "
        "noise on a difference of two readings (tens of litres: probe noise, temperature "
        "stratification, a sale in progress at the reading).",
    )
    untraced_rise_hold_min: float = Field(
        default=60.0,
        gt=0,
        description="untraced_level_rise: the higher level must hold this long after the rise "
        "(the lowest reading in that time counts) above the highest reading in as long before "
        "it, so a single bad reading or a probe settling cannot fire: at the 1–5 min ATG "
        "interval of the SPEC an hour is 12–60 readings. Rising readings less than this apart "
        "are one rise.",
    )
    depot_licence_kinds: tuple[LicenceKind, ...] = Field(
        default=("hazardous_chemicals", "business_licence", "environmental_approval"),
        description="unlicensed_depot_dispatch: the licences a depot needs, valid on the "
        "dispatch's Beijing date (JSON list). 危险化学品经营许可证 (Regulations on the Safe "
        "Management of Hazardous Chemicals, State Council Decree 591, art. 33: storage and "
        "wholesale of fuel need it), 营业执照, and the environmental approval; MOFCOM's "
        "wholesale and storage approvals were abolished in 2019 (国办发〔2019〕42号), and a "
        "depot needs no retail approval.",
    )
    # --- end supply chain ---
    # --- anomaly rules: station conduct (totalizer, licences, vapour, silence) ---
    licence_required_kinds: tuple[LicenceKind, ...] = Field(
        default=("retail_approval", "hazardous_chemicals", "business_licence",
                 "environmental_approval"),
        description="unlicensed_sales: the licences a station needs in force whenever it "
        "sells (JSON list, among the SPEC's four station kinds). 成品油零售经营批准证书 (retail "
        "approval; kept when 国办发〔2019〕42号 abolished the wholesale and storage approvals), "
        "危险化学品经营许可证 (State Council Decree 591 art. 33: no trade in hazardous chemicals "
        "such as gasoline without it), 营业执照, and the environmental approval.",
    )
    vapor_al_min: float = Field(
        default=1.0,
        gt=0,
        description="vapor_al_out_of_band: lower end of the allowed air-to-liquid ratio of "
        "vapour recovery at the nozzle. GB 20952-2020 ch. 5 (emission limits): 1.0 ≤ A/L ≤ 1.2.",
    )
    vapor_al_max: float = Field(
        default=1.2,
        gt=0,
        description="vapor_al_out_of_band: upper end of the allowed A/L ratio (GB 20952-2020 "
        "ch. 5, emission limits). Above it the recovery pump draws air into the tank, which "
        "pressurises it and vents vapour.",
    )
    vapor_al_days: int = Field(
        default=5,
        ge=1,
        le=8,
        description="vapor_al_out_of_band: consecutive Beijing days on which a nozzle's daily "
        "mean A/L is out of band before it is a finding (`medium`). Online monitoring under "
        "GB 20952-2020 Annex E warns from the first day out of band and alarms (报警) after 5 "
        "consecutive days (as monitoring vendors implement it). At most 8 (the rule reads 7 "
        "days before the day in question).",
    )
    vapor_al_high_days: int = Field(
        default=10,
        ge=1,
        description="vapor_al_out_of_band: …and `high` from this many consecutive days: the "
        "monitor's alarm left unrepaired as long again.",
    )
    vapor_pressure_max_pa: float = Field(
        default=600.0,
        description="vapor_pressure_out_of_range: highest allowed hourly mean gauge pressure "
        "of the vapour-recovery system (tank ullage), Pa: the top of the normal range "
        "−1000…+600 Pa in the online-monitoring clause of a GB 20952-2020 draft (there "
        "min(+600 Pa, 80 % of the P/V valve's opening pressure); withdrawn in the approval "
        "draft, whose alarm — beyond the P/V valve's opening pressure ± 200 Pa for 5 min, "
        "2.2 kPa with GB 50156's 2–3 kPa valves — hourly data cannot time; +600 Pa held for "
        "hours already pushes vapour out of every fitting).",
    )
    vapor_pressure_min_pa: float = Field(
        default=-1000.0,
        description="vapor_pressure_out_of_range: lowest allowed hourly mean gauge pressure, "
        "Pa: the bottom of that range (the vent's P/V valve opens at 1.5–2 kPa of vacuum, "
        "GB 50156; a deeper vacuum held for hours means a stuck valve, a blocked vent or "
        "a failed sensor).",
    )
    vapor_pressure_min_hours: int = Field(
        default=2,
        ge=1,
        le=24,
        description="vapor_pressure_out_of_range: consecutive hours (hourly means) beyond a "
        "limit before it is a finding: a tanker unloading (Stage I, 30–60 min) or one odd "
        "hour does not count. At most 24 (the rule reads a day before the day in question).",
    )
    silence_atg_h: float = Field(
        default=2.0,
        ge=0.5,
        description="device_silent, sales_while_gauge_down: a tank's gauge readings may pause "
        "this many hours. ATGs report every 1–5 min (SPEC; the simulator every 15 min), so 2 h "
        "is 24–120 missed readings: no jitter, a shift the tank cannot be reconciled over. "
        "At least 0.5 h (the rules read pauses from that length on).",
    )
    silence_vapor_monitor_h: float = Field(
        default=3.0,
        ge=1.5,
        description="device_silent: the vapour-recovery monitor (any nozzle) may pause this "
        "many hours while gasoline sells. Monitors upload at least hourly (the simulator: "
        "hourly per nozzle); 3 h is two missed uploads with slack. At least 1.5 h.",
    )
    silence_station_h: float = Field(
        default=2.0,
        ge=0.5,
        description="station_silent: a station may send nothing for this many hours (by "
        "arrival at the warehouse, and by its records' own times). Its ATG alone reports every "
        "1–5 min day and night, so 2 h of nothing is an outage, not a quiet spell. At least "
        "0.5 h.",
    )
    # --- end station conduct ---
    debug_pause_before_commit_ms: int = Field(
        default=0, ge=0,
        description="Testing only: sleep inside the open warehouse transaction of each batch, "
        "so a crash test can kill the process mid-batch.",
    )
    debug_failpoint: str = Field(
        default="", pattern=failpoints.PATTERN,
        json_schema_extra={"accepts": "POINT:N (N ≥ 1, POINT one of "
                           + ", ".join(failpoints.POINTS) + "), or empty: off"},
        description="Fault-injection tests only: 'POINT:N' kills this process with SIGKILL the "
        "Nth time it reaches POINT; points: decode, load, after_commit, analysis "
        "(fueltrace/failpoints.py). Empty: off.",
    )

    @field_validator("db", "state_dir", mode="before")
    @classmethod
    def _a_path(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            raise ValueError("an empty path; unset it for the default")
        return value

    @field_validator("db_memory_limit", "analysis_memory_limit")
    @classmethod
    def _enough_memory(cls, value: str) -> str:
        if value and size_bytes(value) < MIN_DB_MEMORY_BYTES:
            raise ValueError(f"{value!r} is below 64MB: a batch's transaction and a checkpoint "
                             "need about 48 MB (below that DuckDB fails the commit)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        """Pairs that only make sense one way round (each names both variables)."""
        pairs = (("heartbeat_interval_ms", "session_timeout_ms"), ("vapor_al_min", "vapor_al_max"),
                 ("vapor_pressure_min_pa", "vapor_pressure_max_pa"))  # fmt: skip
        for low, high in pairs:
            if getattr(self, low) >= getattr(self, high):
                raise ValueError(f"FUELTRACE_{low.upper()} ({getattr(self, low)}) must be below "
                                 f"FUELTRACE_{high.upper()} ({getattr(self, high)})")
        return self

    def topic(self, suffix: str) -> str:
        """The full topic name for a suffix such as ``sale`` or ``dead-letter``."""
        return f"{self.topic_prefix}.{suffix}"


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; keyword overrides win (used by the CLI and tests)."""
    return Settings(**overrides)  # type: ignore[arg-type]
