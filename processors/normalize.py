"""Normalising a validated micro-batch before it is loaded: standard volumes.

Dispatches and deliveries carry their own temperature and density, so their volume at
20 °C is known at ingest and stored beside the observed one. Tank readings and sales
depend on other records (the tank's mix, the gauge's temperature) and are converted by
the lineage job instead (``processors.lineage``).
"""

from __future__ import annotations

import polars as pl

from processors.standard_volume import vcf20_expr

#: Record types whose frames gain ``volume_20_l`` here.
STANDARDISED = ("dispatch", "delivery")


def with_standard_volume(frame: pl.DataFrame) -> pl.DataFrame:
    """Add ``volume_20_l`` = ``volume_l`` × VCF20(product, density, temperature).

    Null where the inputs are outside the range of API MPMS 11.1 (the record is kept;
    the traceability checks report it).
    """
    vcf = vcf20_expr(pl.col("product"), pl.col("density_kg_m3"), pl.col("temperature_c"))
    return frame.with_columns(volume_20_l=pl.col("volume_l") * vcf)


def normalize(record_type: str, frame: pl.DataFrame) -> pl.DataFrame:
    """The frame as it is loaded: derived columns added where the type has them."""
    if record_type in STANDARDISED:
        return with_standard_volume(frame)
    return frame
