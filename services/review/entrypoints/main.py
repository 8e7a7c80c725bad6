"""``ur-review``: the review service process."""

from __future__ import annotations

import sys

from services.common.main import run
from services.common.settings import ReviewSettings
from services.review.bootstrap import build


def main(argv: list[str] | None = None) -> int:
    return run(ReviewSettings, build, argv)


if __name__ == "__main__":
    sys.exit(main())
