"""Each service's migrations form one chain: branches merged in parallel often both add "the next"
revision, and Alembic then warns and applies one of them at random."""

from __future__ import annotations

import re
import warnings

import pytest
from alembic.script import ScriptDirectory

from services.common.migrations import SERVICES_DIR, alembic_config

SERVICES = ("intake", "review", "authorization")


@pytest.mark.parametrize("service", SERVICES)
def test_revisions_form_one_numbered_chain(service: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Revision X is present more than once"
        script = ScriptDirectory.from_config(alembic_config(service, "sqlite://"))
        chain = [rev.revision for rev in reversed(list(script.walk_revisions()))]
    assert len(script.get_heads()) == 1
    assert chain == [f"{n:04d}" for n in range(1, len(chain) + 1)]


@pytest.mark.parametrize("service", SERVICES)
def test_file_names_carry_their_revision(service: str) -> None:
    versions = SERVICES_DIR / service / "migrations" / "versions"
    for path in versions.glob("*.py"):
        declared = re.search(r'^revision: str = ["\'](\d{4})["\']', path.read_text(encoding="utf-8"), re.M)
        assert declared is not None, path.name
        assert path.name.startswith(declared.group(1) + "_"), path.name
