"""``ur-intake``: the intake service process."""

from __future__ import annotations

import sys

from services.common.main import run
from services.intake.bootstrap import build


def main(argv: list[str] | None = None) -> int:
    return run("intake", build, argv)


if __name__ == "__main__":
    sys.exit(main())
