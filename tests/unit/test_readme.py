"""The README's configuration table and ports stay true to the settings contract."""

from __future__ import annotations

from services.common.settings import DEFAULT_PORTS, SETTINGS
from tests.conftest import REPO


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    missing = [s.name for s in SETTINGS if f"`{s.name}`" not in readme]
    assert not missing, f"README lacks {missing}"


def test_readme_ports_match_defaults() -> None:
    readme = (REPO / "README.md").read_text()
    for service, port in DEFAULT_PORTS.items():
        assert f"| {service} | {port} |" in readme
