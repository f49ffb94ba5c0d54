"""The layers check (``python -m experiments.tools.layers``) on the repository and on small made-up trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.tools.layers import LAYERS, check, circles, main


def test_the_repository_imports_downward_without_circles(capsys):
    assert main([]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "experiments -> agents" in out and "ok: imports point downward" in out


def _tree(root: Path, files: dict[str, str]) -> Path:
    for package in LAYERS:
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").touch()
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
        path.write_text(text)
    return root


def test_an_upward_import_fails_and_is_named(tmp_path, capsys):
    root = _tree(tmp_path, {
        "experiments/run.py": "import agents.policy\n",
        "agents/policy.py": "def act():\n    from experiments.run import main  # inside a function: still an edge\n",
    })  # fmt: skip
    report = check(root)
    assert [(e.source, e.target, e.line) for e in report.upward] == [("agents.policy", "experiments.run", 2)]
    assert main(["--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "UPWARD: agents.policy (line 2) imports experiments.run" in out and "FAILED" in out


def test_a_circle_of_modules_fails_even_through_a_function_local_import(tmp_path, capsys):
    root = _tree(tmp_path, {
        "dyadic_env/data/storage.py": "from dyadic_env.synthetic import generator\n",
        "dyadic_env/synthetic/generator.py": "def make():\n    from ..data.storage import write  # relative\n",
    })  # fmt: skip
    report = check(root)
    assert report.module_circles == [["dyadic_env.data.storage", "dyadic_env.synthetic.generator"]]
    assert not report.upward
    assert main(["--root", str(root)]) == 1
    assert (
        "CIRCLE of modules: dyadic_env.data.storage, dyadic_env.synthetic.generator"
        in capsys.readouterr().out
    )


def test_a_circle_of_sub_packages_fails_though_no_module_circle_exists(tmp_path):
    root = _tree(tmp_path, {
        "experiments/commands/train.py": "from experiments.pipelines.trainers import fit\n",
        "experiments/pipelines/trainers.py": "def fit():\n    pass\n",
        "experiments/pipelines/stages.py": "from experiments.commands import train\n",
    })  # fmt: skip
    report = check(root)
    assert report.module_circles == []
    assert report.subpackage_circles == [["experiments.commands", "experiments.pipelines"]]
    assert not report.ok


def test_downward_edges_and_type_only_imports_pass(tmp_path):
    root = _tree(tmp_path, {
        "experiments/run.py": "from agents import policy\nfrom dyadic_env.data import load\n",
        "agents/policy.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from agents.other import X\n",
        "agents/other.py": "from agents.policy import act\n",
        "dyadic_env/data/load.py": "",
    })  # fmt: skip
    report = check(root)
    assert report.ok
    edges = {(e.source, e.target, e.typing_only) for e in report.edges}
    assert {("experiments.run", "agents.policy", False), ("experiments.run", "dyadic_env.data.load", False),
            ("agents.policy", "agents.other", True)} <= edges  # fmt: skip


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ([("a", "b"), ("b", "c")], []),
        ([("a", "b"), ("b", "a"), ("c", "d"), ("d", "e"), ("e", "c")], [["a", "b"], ["c", "d", "e"]]),
        ([("a", "a")], []),
    ],
)
def test_circles_are_the_strongly_connected_components(edges, expected):
    assert circles(edges) == expected


def test_a_root_without_the_packages_is_a_clear_error(tmp_path, capsys):
    assert main(["--root", str(tmp_path)]) == 2
    assert "no package folder experiments" in capsys.readouterr().err
