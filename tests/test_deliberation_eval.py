"""``bench/deliberation_eval.py``: its statistics, and its scripted mode run whole (participants right with
probability p through the real deliberation runner), whose votes must come out binomial (0.648 at p = 0.6)."""

from __future__ import annotations

import importlib.util
import json
import random
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "deliberation_eval.py"


@pytest.fixture(scope="module")
def harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deliberation_eval", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["deliberation_eval"] = module
    spec.loader.exec_module(module)
    return module


def test_wilson_interval_and_the_binomial_majority(harness: ModuleType) -> None:
    low, high = harness.wilson(0, 6)
    assert low == 0.0 and high == pytest.approx(3.8415 / (6 + 3.8415), abs=1e-4)  # z^2 / (n + z^2)
    low, high = harness.wilson(60, 100)
    assert (low, high) == (pytest.approx(0.5020, abs=1e-4), pytest.approx(0.6906, abs=1e-4))
    assert harness.majority_expected(0.6, 3) == pytest.approx(0.648)
    assert harness.majority_expected(0.6, 1) == pytest.approx(0.6)
    assert harness.majority_expected(0.6, 2) == pytest.approx(0.6)  # a tie is a coin flip: 0.36 + 0.48 / 2


def test_tasks_are_seeded_and_their_answers_are_right(harness: ModuleType) -> None:
    first, again = harness.tasks(20, 7, ["arithmetic", "choice"]), harness.tasks(20, 7, ["arithmetic", "choice"])
    assert first == again and first != harness.tasks(20, 8, ["arithmetic", "choice"])
    for task in first:
        expression = task.question.split("result of ")[1].split("?")[0] if task.kind == "arithmetic" else None
        if expression is not None:
            assert int(task.answer) == eval(expression)  # only digits and + - *
        else:
            x, y, z = (int(w) for w in task.question.replace("?", "").split() if w.isdigit())
            assert task.answer == ("yes" if x * y > z else "no")
    assert {t.kind for t in first} == {"arithmetic", "choice"}
    assert harness.arithmetic(random.Random(1)).pattern == harness.ARITHMETIC_PATTERN


def test_the_scripted_run_reproduces_the_binomial_votes(tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    cmd = [sys.executable, str(BENCH), "--scripted", "--p", "0.6", "--questions", "600", "--json", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(out.read_text())
    checks = data["checks"]
    assert checks["choice/debate r1 vote"]["expected"] == pytest.approx(0.648)  # the majority of 3
    assert all(c["ok"] for c in checks.values()) and len(checks) == 8
    rows = data["results"]
    assert rows["choice/single"]["calls_per_question"] == 1 and rows["choice/debate"]["calls_per_question"] == 6
    assert rows["choice/sc@calls=6"]["calls_per_question"] == 6  # equal calls to the debate
    # each participant flips with probability 2p(1-p) from round 1 to round 2, half each way
    flips = rows["choice/debate"]["flips"]
    assert abs(flips["right_to_wrong"] - 0.24 * 3 * 600) < 4 * (0.24 * 0.76 * 1800) ** 0.5
    assert "Harness check" in result.stdout and "WRONG" not in result.stdout
