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
