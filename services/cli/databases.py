"""Where the services keep their data, for the urctl commands that read it directly and only read
(criteria replay, audit, report): the URL given on the command line, else the service's
UR_<SERVICE>_DATABASE_URL, else its SQLite file under UR_VAR_DIR when there is one, else the one
`make run` (and `make demo`) leaves in var/run/. The commands open them read-only
(services/common/db.py read_only_engine)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

from services.common import settings

REPO = Path(__file__).resolve().parents[2]


def database_url(service: str, given: str | None = None) -> str:
    """``service``'s database URL (see the module docstring)."""
    if given:
        return given
    configured = settings.get(f"UR_{service.upper()}_DATABASE_URL")
    if configured:
        return configured
    service_default = settings.default_database_url(service)
    candidates = [service_default, f"sqlite:///{(REPO / 'var' / 'run' / f'{service}.db').resolve()}"]
    for url in candidates:
        database = make_url(url).database
        if database and Path(database).is_file():
            return url
    return service_default
