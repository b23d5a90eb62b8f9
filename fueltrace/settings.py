"""All settings, read from the environment in this one place (``FUELTRACE_…``).

Each field documents its default and why; ``fueltrace settings`` prints them and a
test checks the README lists every one.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Frozen settings of one fueltrace process."""

    model_config = SettingsConfigDict(env_prefix="FUELTRACE_", frozen=True, extra="ignore")

    bootstrap: str | None = Field(
        default=None,
        description="Kafka bootstrap servers (host:port,…). Unset: use the embedded broker "
        "that `fueltrace broker` runs (its address is read from FUELTRACE_STATE_DIR).",
    )
    db: Path = Field(
        default=Path("data/fueltrace.duckdb"),
        description="DuckDB warehouse file. Default under ./data so a checkout is self-contained.",
    )
    state_dir: Path = Field(
        default=Path("data"),
        description="Where the embedded broker records its address and log.",
    )
    topic_prefix: str = Field(
        default="fuel",
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
        default="fueltrace-ingest",
        description="Kafka consumer group of the ingest. The offsets that count are in the "
        "warehouse; the group's own offsets are committed after each load for lag tooling.",
    )
    session_timeout_ms: int = Field(
        default=2000,
        description="Consumer-group session timeout. The embedded Tansu holds a JoinGroup for "
        "half of it, so 2000 ms keeps start-up near 1 s; use 10000+ on real Kafka.",
    )
    heartbeat_interval_ms: int = Field(
        default=500, description="Consumer heartbeat; a quarter of the session timeout."
    )
    batch_max_records: int = Field(
        default=20000,
        ge=1,
        description="A micro-batch is loaded once it holds this many records (a batch message "
        "counts whole)… Bounds memory and the size of one warehouse transaction.",
    )
    batch_max_ms: int = Field(
        default=1000,
        ge=1,
        description="…or when this many milliseconds passed since it started (bounds latency).",
    )
    broker_timeout_s: float = Field(
        default=15.0,
        description="How long a command waits for the broker before saying it is unavailable.",
    )
    max_future_s: int = Field(
        default=300,
        description="A timestamp may be this far ahead of the ingest clock (device clock skew); "
        "later is rejected as timestamp_in_future. 5 minutes, the usual clock-skew allowance "
        "(Kerberos uses the same).",
    )
    max_flow_l_per_min: float = Field(
        default=150.0,
        description="Highest physically possible nozzle flow. Car nozzles deliver ≤ 50 L/min "
        "(GB/T 9081), high-flow truck diesel nozzles up to ~130 L/min; 150 leaves margin.",
    )
    totalizer_tolerance_l: float = Field(
        default=0.02,
        description="Allowed |(totalizer_end − totalizer_start) − volume_l|: dispensers display "
        "0.01 L, so two rounded readings differ by at most 0.02 L.",
    )
    amount_tolerance_fen: int = Field(
        default=1,
        description="Allowed |amount_fen − unit_price_fen × volume_l| beyond rounding: one fen, "
        "the display unit of the amount.",
    )
    transit_loss_tolerance_pct: float = Field(
        default=0.5,
        description="Dispatch vs delivery: allowed loss of volume at 20 °C, % of the dispatched "
        "volume. GB 11085-1989 allows ≤ 0.24 % road-transport loss for gasoline (less for "
        "diesel); the rest covers two meters of class 0.3 (JJG 443) at either end.",
    )
    transit_gain_tolerance_pct: float = Field(
        default=0.3,
        description="Dispatch vs delivery: allowed *gain* at 20 °C, % of the dispatched volume "
        "(a delivery larger than its load): meter error only (class 0.3).",
    )
    density_tolerance_kg_m3: float = Field(
        default=2.0,
        description="Dispatch vs delivery: allowed difference of density at 20 °C. GB/T 1884 "
        "(hydrometer) reproducibility is 1.2 kg/m³ for light products; a wider gap is a classic "
        "sign of adulteration (solvent or lighter stock blended in).",
    )
    gauge_rise_tolerance_pct: float = Field(
        default=1.0,
        description="Declared delivery vs the rise the tank gauge saw (plus sales during "
        "unloading), % of the declared volume at 20 °C: ATG accuracy (±0.5 %, OIML R 85 "
        "class) at both ends of the unloading window.",
    )
    gauge_rise_min_l: float = Field(
        default=50.0,
        description="…and never less than this many litres (gauge resolution on a small drop).",
    )
    delivery_overdue_h: float = Field(
        default=24.0,
        description="A dispatch no station reported receiving this many hours after it left "
        "is an open end (a candidate diversion). Liaoning's road trips are under 12 h.",
    )
    gauge_window_min: float = Field(
        default=120.0,
        description="How far before an unloading starts / after it ends to look for the tank "
        "readings that bracket it (ATGs report every 1–5 min; 2 h tolerates outages).",
    )
    analysis_interval_s: float = Field(
        default=30.0,
        description="A running `fueltrace ingest` brings the analyses (lineage, delivery "
        "checks) up to date after a batch at most this often; `--until-idle` once at the end.",
    )
    metrics_port: int = Field(
        default=9308, description="Port of /metrics while `fueltrace ingest` runs (0 = off)."
    )
    # --- anomaly rules: wetstock (inventory_imbalance, slow_leak, persistent_gain) ---
    # --- end wetstock ---
    # --- anomaly rules: supply chain (deliveries, dispatches, untraced fuel, depots) ---
    # --- end supply chain ---
    # --- anomaly rules: station conduct (totalizer, licences, vapour, silence) ---
    # --- end station conduct ---
    debug_pause_before_commit_ms: int = Field(
        default=0,
        description="Testing only: sleep inside the open warehouse transaction of each batch, "
        "so a crash test can kill the process mid-batch.",
    )

    def topic(self, suffix: str) -> str:
        """The full topic name for a suffix such as ``sale`` or ``dead-letter``."""
        return f"{self.topic_prefix}.{suffix}"


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; keyword overrides win (used by the CLI and tests)."""
    return Settings(**overrides)  # type: ignore[arg-type]
