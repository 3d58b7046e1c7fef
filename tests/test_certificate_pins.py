"""Today's certificates, bit for bit: ``bounds="paper"`` must reproduce the pinned records.

The pins (``tests/data/certificate_pins.json``, made by ``tests/certificate_pins.py``
before the exact bounds were added) cover every metric family, float32 and torch
inputs, Smooth-HD, abstentions at the center check, and :meth:`smooth`. Every field
that the pinned record holds must come back identical (floats compared as floats,
the center as its full array); fields added since are not part of the pin.
"""

import json

import pytest

from certificate_pins import CASES, PATH, SEEDS, certificate, smooth_result

with open(PATH) as _f:
    PINS = json.load(_f)


def _same(pinned, now):
    got = json.loads(json.dumps(now))  # the JSON round trip the pins went through
    diff = {k: (v, got.get(k, "<missing>")) for k, v in pinned.items() if got.get(k, "<missing>") != v}
    return diff


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_paper_certificate_is_the_pinned_one(name, seed):
    pinned = PINS[f"certify/{name}/{seed}"]
    assert _same(pinned, certificate(name, seed, bounds="paper").to_dict()) == {}


@pytest.mark.parametrize("name", sorted(CASES))
def test_paper_smooth_result_is_the_pinned_one(name):
    pinned = PINS[f"smooth/{name}/{SEEDS[0]}"]
    assert _same(pinned, smooth_result(name, SEEDS[0], bounds="paper").to_dict()) == {}


def test_the_pins_hold_certified_and_abstained_cases():
    states = {v["abstained"] for k, v in PINS.items() if k.startswith("certify/")}
    assert states == {True, False}


@pytest.mark.parametrize("key", sorted(PINS))
def test_records_written_before_the_rule_sets_read_back_as_paper_certificates(key):
    """A pinned record has no ``bounds``, ``count``, ``rank``: from_dict completes it as today's paper run makes it."""
    import cs_fast

    cls = cs_fast.Certificate if key.startswith("certify/") else cs_fast.SmoothResult
    _, name, seed = key.split("/")
    make = certificate if cls is cs_fast.Certificate else smooth_result
    assert "bounds" not in PINS[key]
    restored = cls.from_dict(PINS[key])
    assert restored.bounds == "paper"
    assert _same(json.loads(json.dumps(make(name, int(seed), bounds="paper").to_dict())), restored.to_dict()) == {}
