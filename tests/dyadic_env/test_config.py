"""The one config loader: unknown keys, field types, nested sections and older flat files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dyadic_env.config import config_from_dict


@dataclass
class Inner:
    width: int = 4
    names: list[str] = field(default_factory=list)


@dataclass
class Outer:
    rate: float = 1e-3
    steps: int = 10
    on: bool = True
    split: str | None = "val"
    out: Path = Path("runs/x")
    sizes: tuple[int, ...] = (1, 2)
    extra: dict[str, object] = field(default_factory=dict)
    inner: Inner = field(default_factory=Inner)

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, found {self.steps}")


def test_a_mapping_becomes_the_dataclass_with_its_nested_section():
    config = config_from_dict(
        Outer, {"rate": 2, "split": None, "out": "o", "sizes": [3], "inner": {"width": 8}}, "t"
    )
    assert config == Outer(
        rate=2, split=None, out="o", sizes=[3], inner=Inner(width=8)
    )  # values kept as given
    assert config_from_dict(Outer, {}, "t") == Outer()


@pytest.mark.parametrize(
    ("values", "match"),
    [
        (
            {"step": 3},
            r"t: unknown fields \['step'\] \(did you mean 'steps' for 'step'\?\); known fields: extra, ",
        ),
        ({"inner": {"widht": 3}}, r"unknown fields \['inner.widht'\] .*known fields of inner: names, width"),
        ({"steps": "3"}, r"t: steps must be an integer, found '3' \(str\)"),
        ({"steps": True}, "steps must be an integer, found True"),
        ({"on": 1}, "on must be true or false, found 1"),
        ({"rate": "1e-3"}, "rate must be a number, found '1e-3' .*write 1.0e-3"),
        ({"split": 3}, "split must be a string or null, found 3"),
        ({"sizes": [1, "a"]}, "sizes must be a list of integers"),
        ({"extra": [1]}, "extra must be a mapping"),
        ({"inner": 3}, "inner must be a mapping of Inner fields, found 3"),
        ({"inner": {"names": "ab"}}, r"inner\.names must be a list of strings"),
        ([1, 2], "t: expected a mapping of fields, found list"),
        ({"steps": 0}, "steps must be >= 1, found 0"),  # the dataclass's own check still runs
    ],
)
def test_bad_values_name_the_field(values, match):
    with pytest.raises(ValueError, match=match):
        config_from_dict(Outer, values, "t")


@dataclass
class Run:
    model: Outer = field(default_factory=Outer)
    threads: int = 0


def test_flat_keys_move_into_the_section_that_has_them():
    flat = {"steps": 5, "width": 2, "threads": 1}
    config = config_from_dict(Run, flat, "run", flat_sections=("model",))
    assert config == Run(model=Outer(steps=5, inner=Inner(width=2)), threads=1)
    assert flat == {"steps": 5, "width": 2, "threads": 1}  # the caller's mapping is left alone
    nested = {"model": {"inner": {"names": ["a"]}}, "width": 3}
    assert config_from_dict(Run, nested, "run", flat_sections=("model",)).model.inner == Inner(3, ["a"])
    assert nested == {"model": {"inner": {"names": ["a"]}}, "width": 3}
    with pytest.raises(ValueError, match=r"run: steps is given twice, at the top and as model\.steps"):
        config_from_dict(Run, {"steps": 1, "model": {"steps": 2}}, "run", flat_sections=("model",))
    with pytest.raises(ValueError, match=r"unknown fields \['nope'\]"):
        config_from_dict(Run, {"nope": 1}, "run", flat_sections=("model",))
