"""The lock file's tie to pyproject.toml (make lock, make lock-check, make install).

``requirements.lock`` is resolved by ``uv pip compile`` from the dependency spec of
pyproject.toml: ``requires-python``, ``dependencies`` and the locked extras. Its first line holds
that spec's sha256, so a lock resolved from another spec is told apart without re-resolving
(no network, no new releases in the way):

    python tools/lock.py --extras "dev docs" stamp requirements.lock   # after uv pip compile
    python tools/lock.py --extras "dev docs" check requirements.lock   # exit 2, one line, when stale

Only the spec counts: comments, formatting, the order of requirements and extras that are not
locked (``bench``, ``server``) leave the lock in sync. Standard library only (it runs before
any install).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tomllib
from pathlib import Path

HEADER = "# dependency-spec-sha256: {digest} (pyproject.toml: requires-python, dependencies, extras {extras})"
HEADER_RE = re.compile(r"^# dependency-spec-sha256: (?P<digest>[0-9a-f]{64}) ")


class LockError(Exception):
    """A one-line reason the lock cannot be used as it is."""


def spec_digest(pyproject: Path, extras: list[str]) -> str:
    """sha256 of the dependency spec the lock is resolved from (requirements sorted, spaces
    dropped, so only a change of what is required changes it)."""
    try:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as exc:
        raise LockError(f"{pyproject}: no readable [project] table ({exc})") from exc
    optional = project.get("optional-dependencies", {})
    missing = [extra for extra in extras if extra not in optional]
    if missing:
        raise LockError(f"{pyproject}: no optional-dependencies {', '.join(missing)} to lock")

    def canonical(requirements: list[str]) -> list[str]:
        return sorted("".join(req.split()) for req in requirements)

    spec = {"requires-python": project.get("requires-python", ""),
            "dependencies": canonical(project.get("dependencies", [])),
            "extras": {extra: canonical(optional[extra]) for extra in sorted(extras)}}  # fmt: skip
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def stamp(lock: Path, pyproject: Path, extras: list[str]) -> None:
    """Write the spec's digest as the lock's first line (replacing an older one)."""
    lines = lock.read_text(encoding="utf-8").splitlines(keepends=True)
    body = [line for line in lines if not HEADER_RE.match(line)]
    header = HEADER.format(digest=spec_digest(pyproject, extras), extras=" ".join(sorted(extras)))
    lock.write_text(header + "\n" + "".join(body), encoding="utf-8")


def check(lock: Path, pyproject: Path, extras: list[str]) -> None:
    """Raise LockError unless the lock was resolved from pyproject.toml's spec of today."""
    try:
        first = lock.read_text(encoding="utf-8").partition("\n")[0]
    except OSError as exc:
        raise LockError(f"{lock}: cannot be read ({exc.strerror}); run make lock") from exc
    found = HEADER_RE.match(first)
    if found is None:
        raise LockError(f"{lock}: no dependency-spec-sha256 line at its top; run make lock")
    if found["digest"] != spec_digest(pyproject, extras):
        raise LockError(f"{lock}: out of sync with {pyproject} (its dependencies changed since the lock "
                        f"was resolved); run make lock")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extras", required=True, help='the locked extras, e.g. "dev docs"')
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    parser.add_argument("action", choices=["stamp", "check"])
    parser.add_argument("lock", type=Path)
    args = parser.parse_args(argv)
    extras = args.extras.replace(",", " ").split()
    try:
        (stamp if args.action == "stamp" else check)(args.lock, args.pyproject, extras)
    except LockError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
