"""Errors a user can cause with data, each naming the file, the field, what was expected and found."""

from __future__ import annotations


class DataValidationError(ValueError):
    """A dataset file or field does not hold what the format requires.

    The message names the file, the field, what was expected, what was found and, where one exists,
    how to fix it: ``FILE: FIELD: expected EXPECTED, found FOUND. HINT``.
    """

    def __init__(self, file: str, field: str, expected: str, found: str, hint: str = "") -> None:
        self.file, self.field, self.expected, self.found, self.hint = file, field, expected, found, hint
        message = f"{file}: {field}: expected {expected}, found {found}"
        super().__init__(message + (f". {hint}" if hint else ""))

    def __reduce__(self):  # keeps the five fields when the error crosses a process boundary
        return (type(self), (self.file, self.field, self.expected, self.found, self.hint))

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, "field": self.field, "expected": self.expected, "found": self.found,
                "hint": self.hint}  # fmt: skip


def array_load_problem(error: BaseException) -> str:
    """What numpy's refusal to load an array file means, without its advice to allow pickle: the toolkit never
    unpickles data files (a pickle can run any code), so an array file holding Python objects is unusable."""
    text = str(error)
    if "pickle" in text.lower() or "python objects" in text.lower():
        return (
            "not a plain numeric array (an unreadable .npy header, or Python objects, which are never unpickled); "
            "write the array again with numpy.save of a numeric array"
        )
    return f"unreadable ({text})"
