"""Turn an ImportError from the learner's code into what the step expects, from its metadata."""

from __future__ import annotations

import re

from tools.learner.lessons import Expectation, Lesson

_CANNOT_IMPORT = re.compile(r"cannot import name '(?P<name>[\w.]+)' from '(?P<module>[\w.]+)'")
_NO_MODULE = re.compile(r"No module named '(?P<module>[\w.]+)'")
_NO_ATTRIBUTE = re.compile(r"module '(?P<module>[\w.]+)' has no attribute '(?P<name>\w+)'")


def missing_name(message: str) -> tuple[str, str | None] | None:
    """(module, name) an import error message says is missing, or None if it is not one."""
    for pattern in (_CANNOT_IMPORT, _NO_ATTRIBUTE):
        match = pattern.search(message)
        if match:
            return match["module"], match["name"]
    match = _NO_MODULE.search(message)
    if match:
        return match["module"], None
    return None


def expectation_for(
    message: str, lessons: list[Lesson]
) -> tuple[Lesson, Expectation] | tuple[None, None]:
    """The expectation (and its step) a missing name breaks, newest step first."""
    missing = missing_name(message)
    if missing is None:
        return None, None
    module, name = missing
    if not module.startswith("app"):
        return None, None
    for lesson in reversed(lessons):
        for expectation in lesson.expects:
            if expectation.module == module and expectation.name == name:
                return lesson, expectation
    return None, None


def explain(message: str, lessons: list[Lesson]) -> str | None:
    """The lesson's words for an import error in the learner's app, or None if it is not one."""
    missing = missing_name(message)
    if missing is None or not missing[0].startswith("app"):
        return None
    lesson, expectation = expectation_for(message, lessons)
    if lesson is not None and expectation is not None:
        return expectation.message(lesson)
    module, name = missing
    where = "/".join(module.split(".")) + ".py"
    if name is None:
        return f"`{where}` does not exist yet, and something imports `{module}`."
    return f"`{where}` has no `{name}`, and something imports it."
