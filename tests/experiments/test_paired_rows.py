"""scripts/paired_rows.py: row A - row B per seed, from the cells' results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.errors import UserError
from tests.experiments.scripts import load_script


def _script():
    return load_script("paired_rows")


def _cell(out: Path, row: str, seed: int, weighted: float, l2: float, budget: int = 480) -> None:
    path = out / "cells" / row / f"b{budget}-s{seed}" / "result.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"row": {"weighted": weighted, "L2": l2, "FD": 1.0}}))


def test_paired_differences_are_per_seed_with_a_t_interval(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    for seed, (a, b) in enumerate([(3.6, 3.5), (3.8, 3.5), (3.7, 3.6)]):
        _cell(tmp_path, "A", seed, a, l2=0.011)
        _cell(tmp_path, "B", seed, b, l2=0.010)
    page = tmp_path / "page.md"
    _script().main(
        ["--out", str(tmp_path), "--pairs", "A:B", "--seeds", "0", "1", "2", "--report-to", str(page)]
    )
    found = json.loads(page.with_suffix(".json").read_text())["A:B"]
    assert found["weighted"]["diffs"] == pytest.approx([0.1, 0.3, 0.1])
    assert found["weighted"]["mean"] == pytest.approx(0.5 / 3)
    # sd 0.1155 over 3 seeds, t(0.975, 2) = 4.303: half-width 0.287
    assert (found["weighted"]["low"], found["weighted"]["high"]) == pytest.approx((-0.1202, 0.4535), abs=1e-3)
    assert found["L2"]["diffs"] == pytest.approx([10.0, 10.0, 10.0])  # in % of B's
    assert "| A - B | +0.100, +0.300, +0.100 | +0.167 [" in page.read_text()
    with pytest.raises(UserError, match="A/b480-s3: no finished cell"):
        _script().main(["--out", str(tmp_path), "--pairs", "A:B", "--seeds", "3", "--report-to", str(page)])
    with pytest.raises(SystemExit):  # argparse names the malformed pair
        _script().main(["--out", str(tmp_path), "--pairs", "A-B", "--report-to", str(page)])
    assert "--pairs 'A-B': expected ROW_A:ROW_B" in capsys.readouterr().err


def test_a_row_is_paired_with_itself_at_another_budget(tmp_path: Path) -> None:
    for seed, (a, b) in enumerate([(3.6, 3.5), (3.8, 3.5)]):
        _cell(tmp_path, "A", seed, a, l2=0.010, budget=960)
        _cell(tmp_path, "A", seed, b, l2=0.010)
    page = tmp_path / "page.md"
    _script().main(
        ["--out", str(tmp_path), "--pairs", "A@960:A", "--seeds", "0", "1", "--report-to", str(page)]
    )
    found = json.loads(page.with_suffix(".json").read_text())["A@960:A"]
    assert found["weighted"]["diffs"] == pytest.approx([0.1, 0.3])
    assert "| A@960 - A | +0.100, +0.300 |" in page.read_text()
    with pytest.raises(UserError, match="--pairs side 'A@many': expected ROW or ROW@BUDGET"):
        _script().main(["--out", str(tmp_path), "--pairs", "A@many:A", "--report-to", str(page)])
