"""Every range a config key declares holds at its bounds, through ``parse_args`` (the command line).

The bounds are read from the range strings the way a reader of ``common.config.RANGES`` (and of a
family's ``config_keys`` third elements) reads them: "[0, 1)" accepts 0, refuses a hair below 0,
refuses 1 and accepts a hair below 1. "len N" refuses N + 1 values, "ascending" a descending pair,
a tuple of strings every other word. The spec is parsed here with a regex of its own, not with
``common.config``'s, so a bound check that is off (a "[0, 1)" key taking 1.0) fails."""
import os
import re

import numpy as np
import pytest

from common.config import DEFAULTS, RANGES, ConfigError, parse_args
from common.family import families

INTERVAL = re.compile(r"^([\[(])\s*(-?inf|-?[0-9.eE+-]+)\s*,\s*(-?inf|-?[0-9.eE+-]+)\s*([\])])$")
COMMON_MODEL = "dla46_c"  # any registered model: the common keys do not depend on it
CAPPED_AT_CORES = ("num_parallel_workers",)  # accepted, then lowered to the machine's cores (a warning)


def declared_ranges():
    """(model, key, default, spec) for every key with a range: RANGES under a plain model, each
    family's ranged keys under one of its own models (its keys exist only there)."""
    out = [(COMMON_MODEL, key, DEFAULTS[key][0] if key in DEFAULTS else None, spec) for key, spec in RANGES.items()]
    for record in families():
        out += [(record.models[0], key, entry[0], entry[2])
                for key, entry in record.config_keys.items() if len(entry) > 2]
    return out


RANGED = declared_ranges()


def cli_text(value):
    """``value`` as a user types it (a small float as 1e-06: exponent notation included)."""
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def interval_cases(spec, integer):
    """[(value, accepted)] at both finite bounds of the interval ``spec`` (the bound itself and one
    step on the other side of it: 1 for an int key, 1e-6 of the bound's scale for a float key) and
    one value well inside."""
    match = INTERVAL.match(spec.strip())
    assert match, f"unreadable interval {spec!r}"
    left, lo, hi, right = match.groups()
    low, high = float(lo), float(hi)
    inside = (low + high) / 2 if np.isfinite(low) and np.isfinite(high) else \
        low + 2 if np.isfinite(low) else high - 2 if np.isfinite(high) else 0.0
    cases = [(int(inside) if integer else inside, True)]
    for bound, closed, outward in ((lo, left == "[", -1), (hi, right == "]", +1)):
        if bound.lstrip("-") == "inf":
            continue
        bound = int(bound) if integer else float(bound)
        step = 1 if integer else 1e-6 * max(1.0, abs(bound))
        if closed:
            cases += [(bound, True), (bound + outward * step, False)]
        else:
            cases += [(bound, False), (bound - outward * step, True)]
    return cases


def cases_for(key, default, spec):
    """[(command-line value, accepted, what)] for one key's spec."""
    if isinstance(spec, tuple):
        return [(word, True, f"choice {word!r}") for word in spec] + [("no_such_choice", False, "another word")]
    parts = [p.strip() for p in spec.split(";")]
    is_list = isinstance(default, list)
    integer = (all(isinstance(v, int) for v in default) and bool(default)) if is_list else isinstance(default, int)
    length = next((int(p[4:]) for p in parts if p.startswith("len ")), len(default) if is_list else 1) or 2
    cases, accepted = [], []
    for part in parts:
        if part.startswith("len ") or part == "ascending":
            continue
        for value, ok in interval_cases(part, integer):
            cases.append(([value] * length if is_list else value, ok, f"{part} at {value!r}"))
            if ok:
                accepted.append(value)
    if any(p.startswith("len ") for p in parts):
        cases.append(([accepted[0]] * (length + 1), False, f"{length + 1} values"))
    if "ascending" in parts:
        high, low = max(accepted), min(accepted)
        assert high > low, f"{key}: no two in-range values to order"
        cases.append(([high, low] + [low] * (length - 2), False, "descending"))
    return cases


def test_every_ranged_key_is_a_config_key():
    """A range for a key that is not in DEFAULTS (a typo) is never checked: parse_args skips it."""
    assert all(key in DEFAULTS for key in RANGES), sorted(set(RANGES) - set(DEFAULTS))
    for record in families():
        for key, entry in record.config_keys.items():
            if len(entry) > 2:
                assert key not in RANGES, f"{record.name}.{key} also in RANGES: which range holds?"


def test_the_bounds_this_test_reads_include_open_ones():
    """Guard against a vacuous run: there are open bounds (the issue's "[0, 1)") to check."""
    open_bounds = [key for _, key, _, spec in RANGED if isinstance(spec, str) and re.search(r"\(|\)", spec)]
    assert {"label_smooth_factor", "drop_rate", "ema_decay", "crop_pct"} <= set(open_bounds)
    assert any(model != COMMON_MODEL for model, *_ in RANGED), "no family range read"


@pytest.mark.parametrize("model, key, default, spec", RANGED, ids=[f"{m}-{k}" for m, k, _, _ in RANGED])
def test_bounds_accepted_and_refused_as_declared(model, key, default, spec):
    wrong = []
    for value, accepted, what in cases_for(key, default, spec):
        argv = ["--model", model, f"--{key}={cli_text(value)}"]  # "=": a value may start with "-"
        try:
            cfg = parse_args(argv)
        except ConfigError as err:
            if accepted or key not in str(err):
                wrong.append(f"{what}: refused ({err})")
            continue
        if not accepted:
            wrong.append(f"{what}: accepted as {cfg[key]!r}")
        elif cfg[key] != (min(value, os.cpu_count() or 1) if key in CAPPED_AT_CORES else value):
            wrong.append(f"{what}: parsed as {cfg[key]!r}")
    assert not wrong, f"{key} {spec!r}: " + "; ".join(wrong)


def test_list_values_in_exponent_notation_are_numbers(tmp_path):
    """PyYAML (YAML 1.1) reads 8e-2, without a dot, as a string; in a list key it is still the number
    (the scalar keys took it already): from the command line and from a yaml file."""
    assert parse_args(["--scale", "8e-2,1.0"]).scale == [0.08, 1.0]
    path = tmp_path / "exponents.yaml"
    path.write_text("scale: [8e-2, 1.0]\nmean: [4.85e-1, 4.56e-1, 4.06e-1]\nlr: 1e-3\n")
    cfg = parse_args(["--config_path", str(path)])
    assert (cfg.scale, cfg.mean, cfg.lr) == ([0.08, 1.0], [0.485, 0.456, 0.406], 0.001)
