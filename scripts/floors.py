"""Print the dependency floors of pyproject.toml as pip constraints.

Each `name>=X` in the dependencies and the extras becomes `name==X`, so
`make test-floors` installs exactly the lowest versions the package allows
and the floors stay true: raising one is an edit of pyproject.toml only.
`--check` exits non-zero unless the running environment holds exactly them.
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOOR = re.compile(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*>=\s*([^,;\s]+)")


def floors(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """`name==floor` for every runtime requirement that has a floor."""
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    pins: dict[str, str] = {}
    for requirement in requirements:
        match = FLOOR.match(requirement)
        if match is None:
            raise SystemExit(f"{requirement!r}: every dependency needs a >= floor")
        pins[match.group(1).lower()] = match.group(3)
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def check() -> list[str]:
    """The floors this environment does not hold, as messages."""
    wrong = []
    for pin in floors():
        name, _, wanted = pin.partition("==")
        try:
            found = version(name)
        except PackageNotFoundError:
            found = "not installed"
        if _release(found) != _release(wanted):
            wrong.append(f"{name}: floor {wanted}, installed {found}")
    return wrong


def _release(text: str) -> tuple[int, ...]:
    """`3.2` and `3.2.0` are one release."""
    parts = [int(p) for p in re.findall(r"\d+", text)] if text[:1].isdigit() else []
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        problems = check()
        sys.stdout.write("".join(f"{p}\n" for p in problems) or "at the floors\n")
        sys.exit(1 if problems else 0)
    sys.stdout.write("\n".join(floors()) + "\n")
