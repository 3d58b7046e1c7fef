"""The library's structure holds to the design's guides (measured by bench/house.py from the AST)."""

import importlib.util
import pathlib
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def house():
    spec = importlib.util.spec_from_file_location("house", ROOT / "bench" / "house.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def measured(house):
    return house.measure()


def test_no_import_cycle(measured):
    assert measured["cycles"] == []


def test_no_string_dispatch_on_reduction_names(measured):
    assert measured["string_dispatch"] == []


def test_no_library_global_is_set_from_outside(measured):
    assert measured["flipped_globals"] == []


def test_private_names_stay_in_their_module(measured):
    assert measured["private_crossings"] == []


def test_units_stay_small(measured):
    # CenterSmoothing, cuda._build... are named in the note where they are over; nothing new may be.
    assert [name for kind, name, n in measured["oversized"] if n > 160] == []


def test_the_measures_can_fail(house, tmp_path):
    """A package with a cycle, a private import, a string dispatch and a flipped global is caught."""
    pkg = tmp_path / "cs_fast"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(textwrap.dedent("""
        from . import b
        SWITCH = True
        def f(reduction):
            return reduction == "l2"
    """))
    (pkg / "b.py").write_text(textwrap.dedent("""
        from . import a
        from .a import _hidden
        def g():
            a.SWITCH = False
    """))
    graph = house.import_graph(tmp_path)
    assert house.cycles(graph) == [["cs_fast.a", "cs_fast.b"]]
    assert [r[3] for r in house.private_crossings(tmp_path)] == ["_hidden"]
    assert [r[0] for r in house.string_dispatch(tmp_path)] == ["cs_fast.a"]
    assert [(r[2], r[3]) for r in house.flipped_globals(tmp_path, places=("cs_fast",))] == [("cs_fast.a", "SWITCH")]
