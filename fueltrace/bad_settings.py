"""A settings error as lines a person can act on: the variable, its value, what is wrong
and what it accepts, read from the field's type and constraints in
:mod:`fueltrace.settings` (so the message cannot drift from the rule)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import get_args, get_origin

from pydantic import ValidationError

from fueltrace.settings import Settings

_KINDS = {int: "an integer", float: "a number", bool: "true or false", Path: "a path",
          str: "text"}  # fmt: skip
_SIGNS = (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"))
#: A pattern that is a list of choices: ``^(a|b)$``, maybe case-insensitive.
_CHOICES = re.compile(r"(?:\(\?i\))?\^\(([\w|]+)\)\$")


def accepted(name: str) -> str:
    """What setting ``name`` accepts, e.g. ``an integer ≥ 1 (default 4)``."""
    info = Settings.model_fields[name]
    annotation = info.annotation
    what = _KINDS.get(annotation, "") if isinstance(annotation, type) else ""
    if get_origin(annotation) is tuple:
        what = 'a JSON list of "' + '", "'.join(get_args(get_args(annotation)[0])) + '"'
    bounds = []
    for rule in info.metadata:
        bounds += [f"{sign} {getattr(rule, a)}" for a, sign in _SIGNS
                   if getattr(rule, a, None) is not None]  # fmt: skip
        choices = _CHOICES.fullmatch(getattr(rule, "pattern", None) or "")
        if choices:
            what = "one of " + ", ".join(choices.group(1).split("|"))
    text = " ".join(w for w in (what, " and ".join(bounds)) if w)
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    text = str(extra.get("accepts", text))
    if info.examples:
        text += ", e.g. " + ", ".join(map(str, info.examples))
    default = info.default
    shown = "unset" if default is None else json.dumps(list(default)) \
        if isinstance(default, tuple) else default  # fmt: skip
    return f"{text} (default {shown})"


def settings_problems(exc: ValueError) -> list[str]:
    """``exc`` (pydantic's ValidationError, or pydantic-settings' SettingsError for a
    JSON list that is not JSON) as one line per bad variable."""
    if not isinstance(exc, ValidationError):
        found = re.search(r'field "(\w+)"', str(exc))
        if found is None:
            return [str(exc)]
        env = f"FUELTRACE_{found.group(1).upper()}"
        return [f"{env}={os.environ.get(env, '')!r} is not valid JSON; accepted: "
                f"{accepted(found.group(1))}"]
    problems = []
    for error in exc.errors():
        why = str(error["msg"]).removeprefix("Value error, ")
        if not error["loc"]:  # a rule between two settings: its message names both
            problems.append(why)
            continue
        name = str(error["loc"][0])
        env = f"FUELTRACE_{name.upper()}"
        value = os.environ.get(env, error.get("input"))
        if error["type"] == "string_pattern_mismatch":  # the pattern says nothing to people
            why = "not accepted" if str(value).strip() else "empty"
        problems.append(f"{env}={value!r}: {why}; accepted: {accepted(name)}")
    return problems
