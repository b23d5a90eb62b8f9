"""Licences a facility holds: realistic numbers and validity periods.

Numbers follow the printed formats: the retail approval (成品油零售经营批准证书)
``油零售证书第<code><serial>号``, the hazardous-chemicals permit (危险化学品经营许可证)
``<abbr>危化经字〔<year>〕<serial>``, the business licence (营业执照) as an 18-character
unified social credit code with valid GB 32100 and GB 11714 check characters, and the
environmental impact approval ``<abbr>环审〔<year>〕<serial>号``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from simulator.geography import City

#: Validity period of each licence kind, years.
VALIDITY_YEARS: dict[str, int] = {
    "retail_approval": 5,
    "hazardous_chemicals": 3,
    "business_licence": 30,
    "environmental_approval": 15,
}
STATION_LICENCE_KINDS: tuple[str, ...] = tuple(VALIDITY_YEARS)
#: Depots do not retail, so they hold no retail approval.
DEPOT_LICENCE_KINDS: tuple[str, ...] = (
    "hazardous_chemicals",
    "business_licence",
    "environmental_approval",
)
#: Every licence is valid at least this many days before and after the simulated window.
MARGIN_DAYS = 60

_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


@dataclass(frozen=True)
class Licence:
    """One licence as registered; dates are calendar days, ``valid_until`` inclusive."""

    kind: str
    number: str
    valid_from: date
    valid_until: date
    status: str = "valid"


def _org_code(rng: random.Random) -> str:
    """A 9-character organisation code (GB 11714): 8 body characters and a check."""
    body = "".join(rng.choice(_USCC_CHARS[:10] if i < 2 else _USCC_CHARS) for i in range(8))
    total = sum(int(ch, 36) * w for ch, w in zip(body, _ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    return body + {10: "X", 11: "0"}.get(check, str(check))


def social_credit_code(rng: random.Random, division_code: str) -> str:
    """An 18-character unified social credit code (GB 32100) for an enterprise."""
    body = "91" + division_code + _org_code(rng)
    total = sum(_USCC_CHARS.index(ch) * w for ch, w in zip(body, _USCC_WEIGHTS, strict=True))
    return body + _USCC_CHARS[(31 - total % 31) % 31]


def _number(rng: random.Random, kind: str, city: City, year: int) -> str:
    if kind == "retail_approval":
        return f"油零售证书第{city.code[:4]}{rng.randint(1, 9999):04d}号"
    if kind == "hazardous_chemicals":
        return f"{city.abbr}危化经字〔{year}〕{rng.randint(1, 999999):06d}"
    if kind == "business_licence":
        return social_credit_code(rng, city.code)
    return f"{city.abbr}环审〔{year}〕{rng.randint(1, 400)}号"


def issue_licences(
    rng: random.Random, kinds: tuple[str, ...], city: City, window: tuple[date, date]
) -> tuple[Licence, ...]:
    """One valid licence of each kind, valid from before ``window[0]`` to after ``window[1]``
    (with ``MARGIN_DAYS`` to spare on each side)."""
    first, last = window
    licences = []
    for kind in kinds:
        years = VALIDITY_YEARS[kind]
        earliest = add_years(last + timedelta(days=MARGIN_DAYS), -years)
        latest = first - timedelta(days=MARGIN_DAYS)
        span = max((latest - earliest).days, 0)
        valid_from = earliest + timedelta(days=rng.randint(0, span))
        valid_until = add_years(valid_from, years) - timedelta(days=1)
        number = _number(rng, kind, city, valid_from.year)
        licences.append(Licence(kind, number, valid_from, valid_until))
    return tuple(licences)


def add_years(day: date, years: int) -> date:
    """The same calendar day ``years`` later (29 February becomes 1 March)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return date(day.year + years, 3, 1)
