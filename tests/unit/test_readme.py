"""The README's configuration table and ports stay true to the settings contract."""

from __future__ import annotations

from services.common.settings import DEFAULT_PORTS, SETTINGS, markdown_table
from tests.conftest import REPO


def test_the_readme_configuration_table_is_the_settings_table() -> None:
    """The table is `urctl settings --markdown`, i.e. the settings models' fields: regenerate it with
    that command when a setting changes."""
    readme = (REPO / "README.md").read_text()
    table = markdown_table()
    assert table in readme, "README's configuration table differs from `urctl settings --markdown`"
    assert all(f"| `{s.name}` |" in table for s in SETTINGS)


def test_readme_ports_match_defaults() -> None:
    readme = (REPO / "README.md").read_text()
    for service, port in DEFAULT_PORTS.items():
        assert f"| {service} | {port} |" in readme
