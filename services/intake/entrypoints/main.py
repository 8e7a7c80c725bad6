"""``ur-intake``: the intake service process."""

from __future__ import annotations

import sys

from services.common.main import run
from services.common.settings import IntakeSettings
from services.intake.bootstrap import build


def main(argv: list[str] | None = None) -> int:
    return run(IntakeSettings, build, argv)


if __name__ == "__main__":
    sys.exit(main())
