"""requirements.lock, the exact versions scripts/setup.sh installs, is current: it pins every
dependency pyproject.toml declares (the dev extra included) at a version pyproject.toml allows, and
the environment running the tests has exactly the locked versions. When one of these fails, run
`bash scripts/lock.sh` (after a change to pyproject.toml), then `bash scripts/setup.sh`.
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = PROJECT_ROOT / "pyproject.toml"
LOCK = PROJECT_ROOT / "requirements.lock"
EXTRAS = ("dev",)  # the extras scripts/lock.sh locks


def declared(pyproject: Path = PYPROJECT) -> list[Requirement]:
    """The project's dependencies and those of the locked extras, as pyproject.toml states them."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    lines = list(project["dependencies"])
    for extra in EXTRAS:
        lines += project["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


def locked(lock: Path = LOCK) -> dict[str, list[Requirement]]:
    """Canonical name -> its pins (a universal lock may pin a name once per platform marker)."""
    pins: dict[str, list[Requirement]] = {}
    for number, raw in enumerate(lock.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        requirement = Requirement(line)
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", (
            f"{lock.name}:{number}: not an exact pin: {raw!r}"
        )
        pins.setdefault(canonicalize_name(requirement.name), []).append(requirement)
    return pins


def _pin_here(pins: list[Requirement]) -> Requirement | None:
    """The pin whose marker holds on this machine (None: the package is not for this platform)."""
    applying = [pin for pin in pins if pin.marker is None or pin.marker.evaluate()]
    assert len(applying) <= 1, f"two pins apply here: {applying}"
    return applying[0] if applying else None


def _version(pin: Requirement) -> str:
    return next(iter(pin.specifier)).version


def lock_problems(pyproject: Path = PYPROJECT, lock: Path = LOCK) -> list[str]:
    """Each declared dependency that the lock lacks or pins outside the declared range."""
    pins = locked(lock)
    problems = []
    for requirement in declared(pyproject):
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        name = canonicalize_name(requirement.name)
        if name not in pins:
            problems.append(f"{requirement}: not in {lock.name}")
            continue
        for pin in pins[name]:
            if not requirement.specifier.contains(_version(pin), prereleases=True):
                problems.append(f"{requirement}: {lock.name} pins {_version(pin)}")
    return problems


def environment_problems(lock: Path = LOCK) -> list[str]:
    """Each locked distribution (for this platform) missing here or installed at another version."""
    problems = []
    for name, pins in sorted(locked(lock).items()):
        pin = _pin_here(pins)
        if pin is None:
            continue
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name}: locked {_version(pin)}, not installed")
            continue
        if Version(installed) != Version(_version(pin)):
            problems.append(f"{name}: locked {_version(pin)}, installed {installed}")
    return problems


HINT = "after a change to pyproject.toml run `bash scripts/lock.sh`, then `bash scripts/setup.sh`"


def test_the_lock_pins_every_declared_dependency_within_its_range() -> None:
    problems = lock_problems()
    assert problems == [], f"{LOCK.name} is stale: {problems}; {HINT}"


def test_the_test_environment_has_exactly_the_locked_versions() -> None:
    problems = environment_problems()
    assert problems == [], f"this environment is not {LOCK.name}'s: {problems}; {HINT}"


def test_a_stale_lock_is_detected(tmp_path: Path) -> None:
    # The checks above on edited copies: a dependency added to pyproject.toml without relocking,
    # a range moved past the pin, and a pin that no installed version matches.
    pyproject = tmp_path / "pyproject.toml"
    text = PYPROJECT.read_text(encoding="utf-8")
    assert '    "sqlglot==' in text
    pyproject.write_text(
        text.replace(
            '    "sqlglot==', '    "tabulate>=0.9",\n    "zzz-not-locked>=1",\n    "sqlglot=='
        ).replace('"pandas>=2.2,<3"', '"pandas>=3"'),
        encoding="utf-8",
    )
    problems = lock_problems(pyproject)
    assert any(problem.startswith("zzz-not-locked>=1: not in") for problem in problems), problems
    assert any(problem.startswith("pandas>=3: requirements.lock pins 2.") for problem in problems)
    assert len(problems) == 2, problems  # tabulate is locked (a dependency of dependencies)

    lock = tmp_path / "requirements.lock"
    pinned = _version(_pin_here(locked()["packaging"]))
    lock.write_text(
        LOCK.read_text(encoding="utf-8").replace(f"packaging=={pinned}\n", "packaging==0.0.1\n"),
        encoding="utf-8",
    )
    new = set(environment_problems(lock)) - set(environment_problems())
    assert new == {f"packaging: locked 0.0.1, installed {metadata.version('packaging')}"}
