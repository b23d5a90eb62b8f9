"""One small province with one incident of every kind, each at its own station, generated
once for the scenario tests (6 days, 24 stations, 2 depots: about 6 s; six days so an A/L
drift can reach the 5-day alarm)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from simulator import DEFAULT_START, Generated, Scenario, generate_with_truth, province_for
from simulator.province import Province

PROVINCE = {"seed": 5, "depots": 2, "stations": 24, "days": 6.0}


def at(hours: float) -> datetime:
    return DEFAULT_START + timedelta(hours=hours)


def _scenarios(p: Province) -> list[Scenario]:
    s = [st.facility_id for st in p.stations]
    on_t2 = sorted({n.dispenser_id for n in p.stations[2].nozzles if n.tank_id == "T2"})

    def one(kind: str, station: int, hours: float, **kw: Any) -> Scenario:
        return Scenario(kind, at(hours), station_id=s[station], **kw)

    return [
        one("leak", 0, 24, subject="T2", end=at(48), params={"rate_l_h": 2.0}),
        one("off_book_delivery", 1, 6, subject="T1", params={"volume_l": 4_000}),
        *[one("calibration_fraud", 2, 0, subject=d, params={"gain_pct": 2.0})
          for d in on_t2],
        one("totalizer_tampering", 3, 10, subject="N01", end=at(40),
            params={"jump_l": -500, "jumps": 2}),
        one("diverted_load", 4, 3, subject="T1", params={"volume_l": 6_000},
            options={"resold_to": s[21]}),
        one("shortfall", 5, 1, params={"short_pct": 2.0, "seals_broken": 1}),
        one("adulteration", 6, 1, params={"density_delta_kg_m3": 6.0}),
        one("product_swap", 7, 1),
        one("vehicle_swap", 8, 1),
        one("gauge_short_delivery", 9, 1, params={"short_pct": 6.0}),
        one("delivery_without_dispatch", 10, 1, params={"unknown_dispatch": 1}),
        one("expired_licence", 11, 24, subject="retail_approval"),
        one("suspended_licence", 12, 30, subject="hazardous_chemicals"),
        one("revoked_licence", 22, 40, subject="business_licence"),
        one("al_drift", 13, 12, subject="N01", params={"al_ratio": 0.8, "ramp_h": 6}),
        one("pressure_fault", 14, 20, end=at(30), params={"pressure_pa": 900}),
        one("device_outage", 15, 30, subject="ATG1", end=at(40), options={"status": "fault"}),
        one("deliberate_silence", 16, 30, subject="D1", end=at(40)),
        one("device_outage", 17, 30, subject="D2", end=at(40)),
        one("deliberate_silence", 18, 20, subject="GW1", end=at(30)),
        one("device_outage", 19, 20, subject="VM1", end=at(30)),
        one("device_outage", 20, 40, subject="GW1", end=at(46)),
        Scenario("unlicensed_depot", at(12), depot_id=p.stations[22].depot_id,
                 options={"status": "suspended"}),
    ]  # fmt: skip


@pytest.fixture(scope="session")
def injected() -> Generated:
    return generate_with_truth(**PROVINCE, scenarios=_scenarios(province_for(**PROVINCE)))


@pytest.fixture(scope="session")
def clean_station(injected: Generated) -> str:
    """A station with no incident of its own (its depot's licence lapses, its sales do not)."""
    return province_for(**PROVINCE).stations[23].facility_id
