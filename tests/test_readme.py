"""The README a newcomer reads: two screens, a runnable example, the CI test line, links that resolve."""

import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(REPO, "README.md")) as _f:
    README = _f.read()


def test_two_screens_at_most():
    assert len(README.splitlines()) <= 200


def test_the_python_example_runs_as_written():
    (block,) = re.findall(r"```python\n(.*?)```", README, re.S)
    namespace = {}
    exec(compile(block, "README.md", "exec"), namespace)  # no made-up variables: it must run alone
    cert = namespace["cert"]
    assert cert.bounds == "exact" and cert.m == 10_000 and namespace["D"].shape == (5, 3)


def test_ci_runs_the_readme_test_line_with_the_slow_tests():
    lines = README.splitlines()
    i = lines.index("<!-- ci:test -->")
    command = next(line for line in lines[i + 1:] if line.startswith("pip install"))
    assert "-e '.[test]'" in command and "pytest" in command and '-m "slow or not slow"' in command
    with open(os.path.join(REPO, "setup.cfg")) as f:
        assert "not slow" in f.read()  # so that the plain pytest run stays quick


def test_links_resolve():
    targets = re.findall(r"\]\(([^)]+)\)", README)
    assert targets and all(os.path.exists(os.path.join(REPO, t)) for t in targets), targets


def test_no_measurement_narrative():
    for words in ("load average", "before this session", "previous", "not measured"):
        assert words not in README
