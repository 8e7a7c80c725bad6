"""``ur-review``: the review service process."""

from __future__ import annotations

import sys

from services.common.main import run
from services.review.bootstrap import build


def main(argv: list[str] | None = None) -> int:
    return run("review", build, argv)


if __name__ == "__main__":
    sys.exit(main())
