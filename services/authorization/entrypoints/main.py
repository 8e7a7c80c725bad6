"""``ur-authorization``: the authorization service process."""

from __future__ import annotations

import sys

from services.authorization.bootstrap import build
from services.common.main import run
from services.common.settings import AuthorizationSettings


def main(argv: list[str] | None = None) -> int:
    return run(AuthorizationSettings, build, argv)


if __name__ == "__main__":
    sys.exit(main())
