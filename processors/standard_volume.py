"""Volume correction to 20 °C (VCF20) for refined fuels, scalar and vectorised in Polars.

China states fuel quantities at 20 °C (GB/T 1885-1998, equivalent to ISO 91-2:1991): the
standard volume is ``V20 = Vt × VCF20``, where ``Vt`` is the volume observed at the liquid
temperature ``t`` (°C) and ``VCF20`` depends on ``t`` and on the product's density at 20 °C
(kg/m³). VCF20 is the *CTL* (correction for the temperature of the liquid) of API MPMS
Chapter 11.1 / ASTM D1250 / IP 200; pressure is not corrected (atmospheric tanks, CPL = 1).

Method implemented
------------------
The full API MPMS Ch. 11.1-2004 (ASTM D1250-04) procedure for generalized refined products,
re-based to 20 °C as its §11.1.7 prescribes; no table look-up and no simplified shortcut:

1. The 2004 standard works at a 60 °F base. ``α60 = K0/ρ*² + K1/ρ* + K2`` (per °F), with the
   published constants below, where ``ρ*`` is ρ60 shifted for the IPTS-68 → ITS-90 change of the
   60 °F base (§11.1.6.1 step 3)::

       A  = δ60/2 · ((K0/ρ60 + K1)/ρ60 + K2)           δ60 = 0.01374979547 °F
       B  = (2·K0 + K1·ρ60) / (K0 + (K1 + K2·ρ60)·ρ60)
       ρ* = ρ60 · (1 + (exp(A·(1 + 0.8·A)) − 1) / (1 + A·(1 + 1.6·A)·B))

2. The temperature (ITS-90 °C) is converted to IPTS-68 with the standard's eight-term
   polynomial (``t68 = t90 − Σ aᵢ·(t90/630)ⁱ``) and to °F, ``Δt = t68[°F] − 60.0068749``, and
   (§11.1.6.1 step 5)::

       CTL60(t) = exp(−α60 · Δt · (1 + 0.8 · α60 · (Δt + δ60)))

3. Re-basing to 20 °C (§11.1.7): ρ60 is found from ρ20 by fixed-point iteration of
   ``ρ60 = ρ20 / CTL60(20 °C; ρ60)``: 10 rounds from ρ60 = ρ20, each shrinking the error
   roughly 30- to 150-fold, leave a residual below 1e-10 kg/m³ (round-off for gasoline and
   diesel), then::

       VCF20(t) = CTL60(t) / CTL60(20 °C)

   evaluated as one ``exp(E20 − Et)``, so ``VCF20(20 °C)`` is exactly 1.0.

Coefficients (2004 edition, per °F, 60 °F base)
-----------------------------------------------
=============  ========  ======  ===========  ======================================
group          K0        K1      K2           ρ60 band of the group, kg/m³
=============  ========  ======  ===========  ======================================
gasoline       192.4571  0.2438  0            610.6 – 770.3520
transition     1489.067  0       −0.0018684   770.3520 – 787.5195
jet            330.3010  0       0            787.5195 – 838.3127
diesel         103.8720  0.2701  0            838.3127 – 1163.5  ("Fuel Oils" group)
=============  ========  ======  ===========  ======================================

The 1980 tables (ASTM D1250-80 Tables 54B/60B, ISO 91-1/91-2, GB/T 1885-1998) use the *same*
coefficients expressed per °C at a 15 °C base, i.e. multiplied by 1.8: gasoline 346.4228 /
0.4388, transition 2680.3206 / −0.00336312, jet 594.5418, fuel oils 186.9696 / 0.4862.
The two sets must never be mixed: a per-°C pair in the per-°F formula doubles the expansion.

Product mapping
---------------
``gasoline_92/95/98`` → gasoline group; ``diesel_0/m10/m20/m35`` → diesel (fuel oils) group, by
product, as the project decided. Note that the tables themselves (ASTM D1250, GB/T 1885 Table
60B) choose the group by *density*: gasoline below ρ20 ≈ 766.4, transition to ≈ 784.2, jet to
≈ 835.2, fuel oils above. For diesels lighter than ≈ 835 kg/m³ and gasolines heavier than ≈ 766
kg/m³ this module therefore differs from a Table 60B look-up: a ρ20 = 815 kg/m³ diesel by
−4.3e-4 at −10 °C and +3.0e-4 at 40 °C, a ρ20 = 775 kg/m³ gasoline by +1.5e-3 at 0 °C.
:func:`vcf20_for_group` takes any of the four groups for callers that need the table's choice.

Validity limits (checked)
-------------------------
The 2004 limits for refined products: ρ60 in [610.6, 1163.5] kg/m³ and t in [−50, 150] °C
(−58 … 302 °F). ρ60 is the iterated base density, so the admissible ρ20 range depends on the
group (≈ 606–1161 kg/m³ for gasoline and diesel). Non-finite inputs and ρ20 outside [500, 1300]
kg/m³ are rejected before iterating. The scalar functions raise :class:`ValueError`;
:func:`vcf20_expr` yields null. Each group's own density band (table above) is *not* enforced,
because the product mapping deliberately applies the gasoline and fuel-oil sets across the
whole density range of the product grades.

Rounding and accuracy
---------------------
Nothing is rounded: inputs are used as given and the factor is returned in full double
precision, so that sums over millions of rows carry no rounding bias. For a printout that
conforms to the standard's rounding rules, round t to 0.05 °C and ρ to 0.1 kg/m³ first and
VCF20 to 5 decimals (2004), or to 4 decimals to match GB/T 1885 / ISO 91-2 tables. Accuracy
checked in ``tests/processors/test_standard_volume.py``: the standard's worked examples
(§11.1.6.1, CTL at 60 °F) are reproduced to 5e-13; ASTM Table 60B values (4 decimals,
fuel-oil range) agree within 6e-5; the 1980 15 °C-base formulation, from which the GB/T 1885 /
ISO 91-2 Table 60B is computed, agrees within 2.5e-5 for the gasoline and diesel groups over
−40 … 60 °C (the transition group, whose α is very density-sensitive, differs by up to
2.6e-4). :func:`vcf20_expr` reproduces :func:`vcf20` to the last bit in practice (tested to
1e-12).

Sources: API MPMS Chapter 11.1-2004 / ASTM D1250-04 / IP 200/04 (Adjunct), §11.1.6.1,
§11.1.7; ASTM D1250-80 / ISO 91-2:1991 Table 60B; GB/T 1885-1998.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal, TypeVar

import polars as pl

__all__ = [
    "BASE_TEMPERATURE_C",
    "COEFFICIENTS",
    "DENSITY60_MAX_KG_M3",
    "DENSITY60_MIN_KG_M3",
    "GROUPS",
    "PRODUCT_GROUPS",
    "TEMPERATURE_MAX_C",
    "TEMPERATURE_MIN_C",
    "Coefficients",
    "ctl_from_60f",
    "density60_from_density20",
    "product_group",
    "standard_volume_l",
    "vcf20",
    "vcf20_expr",
    "vcf20_for_group",
]

ProductGroup = Literal["gasoline", "diesel"]


@dataclass(frozen=True)
class Coefficients:
    """API MPMS 11.1-2004 constants: ``α60 = K0/ρ² + K1/ρ + K2`` in 1/°F, ρ in kg/m³ at 60 °F."""

    k0: float
    k1: float
    k2: float


#: The four generalized refined-product groups of API MPMS 11.1-2004 (per °F, 60 °F base).
#: "diesel" is the standard's "Fuel Oils" group.
COEFFICIENTS: Final[Mapping[str, Coefficients]] = MappingProxyType(
    {
        "gasoline": Coefficients(192.4571, 0.2438, 0.0),
        "transition": Coefficients(1489.0670, 0.0, -0.0018684),
        "jet": Coefficients(330.3010, 0.0, 0.0),
        "diesel": Coefficients(103.8720, 0.2701, 0.0),
    }
)
GROUPS: Final[tuple[str, ...]] = tuple(COEFFICIENTS)

#: Product grade (the ``Product`` enum of the record schemas) → coefficient group.
PRODUCT_GROUPS: Final[Mapping[str, ProductGroup]] = MappingProxyType(
    {
        "gasoline_92": "gasoline",
        "gasoline_95": "gasoline",
        "gasoline_98": "gasoline",
        "diesel_0": "diesel",
        "diesel_m10": "diesel",
        "diesel_m20": "diesel",
        "diesel_m35": "diesel",
    }
)

BASE_TEMPERATURE_C: Final = 20.0
#: Limits of API MPMS 11.1-2004 for refined products (density at 60 °F, ITS-90 temperature).
DENSITY60_MIN_KG_M3: Final = 610.6
DENSITY60_MAX_KG_M3: Final = 1163.5
TEMPERATURE_MIN_C: Final = -50.0
TEMPERATURE_MAX_C: Final = 150.0

# ρ20 outside this band cannot map into the ρ60 limits; rejected before iterating.
_DENSITY20_SCREEN_MIN: Final = 500.0
_DENSITY20_SCREEN_MAX: Final = 1300.0
_DENSITY60_ITERATIONS: Final = 10

# ITS-90 → IPTS-68: t68 = t90 − Σ a_i · (t90/630)^i, t in °C (API MPMS 11.1-2004).
_ITS90_TO_IPTS68: Final = (
    -0.148759,
    -0.267408,
    1.080760,
    1.269056,
    -4.089591,
    -1.871251,
    7.438081,
    -3.536296,
)
_DELTA_60_F: Final = 0.01374979547  # shift of the 60 °F base between IPTS-68 and ITS-90, °F
_BASE_60_IPTS68_F: Final = 60.0068749  # 60 °F (ITS-90) on the IPTS-68 scale, °F

_N = TypeVar("_N", float, pl.Expr)


# --------------------------------------------------------------------------------------------
# The arithmetic, written once for Python floats and for Polars expressions alike, so that the
# scalar and the vectorised paths run the very same operations in the same order.


def _delta_t_f(t_c: _N) -> _N:
    """ITS-90 °C → IPTS-68 °F, minus the 60 °F base (60.0068749 °F on IPTS-68)."""
    tau = t_c / 630.0
    acc = tau * _ITS90_TO_IPTS68[-1]
    for a in reversed(_ITS90_TO_IPTS68[:-1]):
        acc = tau * (a + acc)
    return 1.8 * (t_c - acc) + 32.0 - _BASE_60_IPTS68_F


def _alpha60(k0: _N, k1: _N, k2: _N, rho60: _N, exp: Callable[[_N], _N]) -> _N:
    """α60 (1/°F) from ρ60 (kg/m³), with the IPTS-68 density shift ρ* of §11.1.6.1 step 3."""
    a = (_DELTA_60_F / 2.0) * ((k0 / rho60 + k1) / rho60 + k2)
    b = (2.0 * k0 + k1 * rho60) / (k0 + (k1 + k2 * rho60) * rho60)
    rho_star = rho60 * (1.0 + (exp(a * (1.0 + 0.8 * a)) - 1.0) / (1.0 + a * (1.0 + 1.6 * a) * b))
    return (k0 / rho_star + k1) / rho_star + k2


def _ctl_exponent(alpha60: _N, delta_t_f: _N | float) -> _N:
    """E with CTL60 = exp(−E) (§11.1.6.1 step 5)."""
    return alpha60 * delta_t_f * (1.0 + 0.8 * alpha60 * (delta_t_f + _DELTA_60_F))


_DELTA_T_20_F: Final = _delta_t_f(BASE_TEMPERATURE_C)


def _density60_step(k0: _N, k1: _N, k2: _N, rho20: _N, rho60: _N, exp: Callable[[_N], _N]) -> _N:
    """One fixed-point round of ρ60 = ρ20 / CTL60(20 °C; ρ60)."""
    return rho20 * exp(_ctl_exponent(_alpha60(k0, k1, k2, rho60, exp), _DELTA_T_20_F))


def _vcf20_from_alpha(alpha60: _N, t_c: _N, exp: Callable[[_N], _N]) -> _N:
    """CTL60(t) / CTL60(20 °C) = exp(E20 − Et)."""
    return exp(_ctl_exponent(alpha60, _DELTA_T_20_F) - _ctl_exponent(alpha60, _delta_t_f(t_c)))


def _exp_expr(x: pl.Expr) -> pl.Expr:
    return x.exp()


# --------------------------------------------------------------------------------------------
# Scalar API


def product_group(product: str) -> ProductGroup:
    """Coefficient group of a product grade: ``"gasoline"`` or ``"diesel"``.

    ``product`` is a symbol of the records' ``Product`` enum (``gasoline_92`` …
    ``diesel_m35``). Raises :class:`ValueError` naming the product when it is unknown.
    """
    try:
        return PRODUCT_GROUPS[product]
    except (KeyError, TypeError):
        known = ", ".join(PRODUCT_GROUPS)
        raise ValueError(
            f"unknown product {product!r}: no volume-correction group (known: {known})"
        ) from None


def _coefficients(group: str) -> Coefficients:
    try:
        return COEFFICIENTS[group]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown coefficient group {group!r} (known: {', '.join(GROUPS)})"
        ) from None


def _check_density60(rho60: float, what: str) -> None:
    if not DENSITY60_MIN_KG_M3 <= rho60 <= DENSITY60_MAX_KG_M3:
        raise ValueError(
            f"{what} is outside the API MPMS 11.1-2004 limits for refined products "
            f"({DENSITY60_MIN_KG_M3}–{DENSITY60_MAX_KG_M3} kg/m³ at 60 °F)"
        )


def density60_from_density20(group: str, density20_kg_m3: float) -> float:
    """Density at 60 °F (kg/m³) of a product of ``group`` whose density at 20 °C is given.

    API MPMS 11.1-2004 §11.1.7: fixed-point iteration of ρ60 = ρ20 / CTL60(20 °C; ρ60).
    Raises :class:`ValueError` for an unknown group, a non-finite density or one that maps
    outside the standard's limits.
    """
    coeffs = _coefficients(group)
    rho20 = float(density20_kg_m3)
    if not (math.isfinite(rho20) and _DENSITY20_SCREEN_MIN <= rho20 <= _DENSITY20_SCREEN_MAX):
        raise ValueError(
            f"density at 20 °C {density20_kg_m3!r} kg/m³ is outside the API MPMS 11.1-2004 "
            f"limits for refined products ({DENSITY60_MIN_KG_M3}–{DENSITY60_MAX_KG_M3} kg/m³ "
            "at 60 °F)"
        )
    rho60 = rho20
    for _ in range(_DENSITY60_ITERATIONS):
        rho60 = _density60_step(coeffs.k0, coeffs.k1, coeffs.k2, rho20, rho60, math.exp)
    _check_density60(
        rho60, f"density at 20 °C {rho20} kg/m³ (= {rho60:.4f} kg/m³ at 60 °F, {group})"
    )
    return rho60


def ctl_from_60f(group: str, density60_kg_m3: float, temperature_f: float) -> float:
    """CTL correcting a volume at ``temperature_f`` (ITS-90 °F) to 60 °F, unrounded.

    API MPMS 11.1-2004 §11.1.6.1 steps 2–5 (no pressure correction); ``density60_kg_m3`` is
    the density at 60 °F. This is the 60 °F building block of :func:`vcf20`, exposed so it can
    be checked against the standard's worked examples. Raises :class:`ValueError` outside the
    standard's limits (610.6–1163.5 kg/m³, −58–302 °F).
    """
    coeffs = _coefficients(group)
    rho60 = float(density60_kg_m3)
    t_f = float(temperature_f)
    if not math.isfinite(rho60):
        raise ValueError(f"density at 60 °F {density60_kg_m3!r} kg/m³ is not a number")
    _check_density60(rho60, f"density at 60 °F {rho60} kg/m³")
    t_min_f, t_max_f = 1.8 * TEMPERATURE_MIN_C + 32.0, 1.8 * TEMPERATURE_MAX_C + 32.0
    if not (math.isfinite(t_f) and t_min_f <= t_f <= t_max_f):
        raise ValueError(
            f"temperature {temperature_f!r} °F is outside the API MPMS 11.1-2004 limits "
            f"({t_min_f:g}–{t_max_f:g} °F)"
        )
    alpha = _alpha60(coeffs.k0, coeffs.k1, coeffs.k2, rho60, math.exp)
    return math.exp(-_ctl_exponent(alpha, _delta_t_f((t_f - 32.0) / 1.8)))


def vcf20_for_group(group: str, density20_kg_m3: float, temperature_c: float) -> float:
    """VCF20 with the coefficients of ``group`` (``gasoline``/``transition``/``jet``/``diesel``).

    ``density20_kg_m3``: density at 20 °C, kg/m³; ``temperature_c``: liquid temperature, ITS-90
    °C. Returns the factor with ``V20 = Vt × VCF20`` (dimensionless, unrounded). Raises
    :class:`ValueError` for an unknown group or inputs outside the standard's limits.
    """
    t_c = float(temperature_c)
    if not (math.isfinite(t_c) and TEMPERATURE_MIN_C <= t_c <= TEMPERATURE_MAX_C):
        raise ValueError(
            f"temperature {temperature_c!r} °C is outside the API MPMS 11.1-2004 limits "
            f"({TEMPERATURE_MIN_C:g}–{TEMPERATURE_MAX_C:g} °C)"
        )
    coeffs = _coefficients(group)
    rho60 = density60_from_density20(group, density20_kg_m3)
    alpha = _alpha60(coeffs.k0, coeffs.k1, coeffs.k2, rho60, math.exp)
    return _vcf20_from_alpha(alpha, t_c, math.exp)


def vcf20(product: str, density20_kg_m3: float, temperature_c: float) -> float:
    """Volume correction factor from ``temperature_c`` to 20 °C for a product grade.

    ``product``: a ``Product`` enum symbol (mapped by :func:`product_group`);
    ``density20_kg_m3``: density at 20 °C in kg/m³; ``temperature_c``: liquid temperature in
    ITS-90 °C. Returns VCF20 (dimensionless, unrounded) with ``volume_20 = observed × VCF20``;
    exactly 1.0 at 20 °C, below 1 above 20 °C. Method, limits and accuracy: see the module
    docstring. Raises :class:`ValueError` for an unknown product or out-of-range inputs.
    """
    return vcf20_for_group(product_group(product), density20_kg_m3, temperature_c)


def standard_volume_l(
    product: str, density20_kg_m3: float, temperature_c: float, observed_l: float
) -> float:
    """Volume at 20 °C, in litres, of ``observed_l`` litres observed at ``temperature_c`` °C.

    ``V20 = observed_l × vcf20(product, density20_kg_m3, temperature_c)``; unrounded. Raises
    :class:`ValueError` as :func:`vcf20` does, and for a non-finite ``observed_l``.
    """
    observed = float(observed_l)
    if not math.isfinite(observed):
        raise ValueError(f"observed volume {observed_l!r} L is not a finite number")
    return observed * vcf20(product, density20_kg_m3, temperature_c)


# --------------------------------------------------------------------------------------------
# Polars API


def _product_coefficient(product: pl.Expr, attribute: str) -> pl.Expr:
    """Per-row K0/K1/K2 for a String product column; null for an unknown product."""
    values = {p: getattr(COEFFICIENTS[g], attribute) for p, g in PRODUCT_GROUPS.items()}
    return product.replace_strict(values, default=None, return_dtype=pl.Float64)


def vcf20_expr(product: pl.Expr, density: pl.Expr, temperature: pl.Expr) -> pl.Expr:
    """:func:`vcf20` as a Polars expression (Float64), pure expressions, no Python UDF.

    ``product``: product grade (String, Enum or Categorical of ``Product`` symbols);
    ``density``: density at 20 °C, kg/m³; ``temperature``: liquid temperature, ITS-90 °C.
    Yields null where :func:`vcf20` would raise (unknown product, inputs outside the
    standard's limits, NaN/inf) and where any input is null. The ρ60 iteration is unrolled
    with ``struct.with_fields`` so the plan grows linearly, not exponentially, with the rounds.
    """
    p = product.cast(pl.String)
    k0, k1, k2 = pl.field("k0"), pl.field("k1"), pl.field("k2")
    rho20, rho60, t_c = pl.field("rho20"), pl.field("rho60"), pl.field("t")
    rho20_in = density.cast(pl.Float64)
    state = pl.struct(
        k0=_product_coefficient(p, "k0"),
        k1=_product_coefficient(p, "k1"),
        k2=_product_coefficient(p, "k2"),
        rho20=rho20_in,
        rho60=rho20_in,
        t=temperature.cast(pl.Float64),
    )
    for _ in range(_DENSITY60_ITERATIONS):
        state = state.struct.with_fields(rho60=_density60_step(k0, k1, k2, rho20, rho60, _exp_expr))
    state = state.struct.with_fields(alpha=_alpha60(k0, k1, k2, rho60, _exp_expr))
    valid = (
        rho20.is_finite()
        & rho20.is_between(_DENSITY20_SCREEN_MIN, _DENSITY20_SCREEN_MAX)
        & rho60.is_finite()
        & rho60.is_between(DENSITY60_MIN_KG_M3, DENSITY60_MAX_KG_M3)
        & t_c.is_finite()
        & t_c.is_between(TEMPERATURE_MIN_C, TEMPERATURE_MAX_C)
    )
    vcf = pl.when(valid).then(_vcf20_from_alpha(pl.field("alpha"), t_c, _exp_expr))
    return state.struct.with_fields(vcf=vcf).struct.field("vcf").alias("vcf20")
