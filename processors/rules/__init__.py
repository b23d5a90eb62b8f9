"""The anomaly catalogue: one module per rule, named after the rule, each exporting
``RULE`` (a :class:`processors.rules.base.Rule`). Discovered here, in name order."""

from __future__ import annotations

import importlib
import pkgutil

from processors.rules.base import Rule


def _discover() -> tuple[Rule, ...]:
    rules = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name == "base" or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        rule = getattr(module, "RULE", None)
        if not isinstance(rule, Rule) or rule.name != info.name:
            raise ImportError(f"processors/rules/{info.name}.py must define RULE named "
                              f"{info.name!r}")  # fmt: skip
        rules.append(rule)
    return tuple(rules)


RULES: tuple[Rule, ...] = _discover()
BY_NAME: dict[str, Rule] = {r.name: r for r in RULES}

__all__ = ["BY_NAME", "RULES", "Rule"]
