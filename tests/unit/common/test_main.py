"""The service command line: a configuration problem exits 2 and says what is wrong, any other failure
to start exits 1; nothing is started before the settings and files are known to be good."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from services.common import main
from services.common.config_files import ConfigFileError
from services.common.metrics import Metrics
from services.common.settings import AuthorizationSettings
from tests.conftest import REPO


def run_service(service: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m services.<service>.entrypoints.main`` with only ``env`` of the UR_* variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("UR_")}
    clean.update({"UR_VAR_DIR": str(tmp_path), **env})
    return subprocess.run([sys.executable, "-m", f"services.{service}.entrypoints.main"], env=clean, cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)


def test_a_bad_setting_exits_2_naming_the_variable(tmp_path: Path) -> None:
    done = run_service("review", tmp_path, UR_REVIEW_LEASE_S="-5", UR_REVIEW_GRPC_LISTEN="nowhere")
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "ur-review: configuration error:",
        "  UR_REVIEW_GRPC_LISTEN: expected host:port, got 'nowhere'",
        "  UR_REVIEW_LEASE_S: must be greater than 0, got -5.0",
    ]
    assert not (tmp_path / "review.db").exists()  # refused before anything was touched


def test_a_misspelt_variable_exits_2(tmp_path: Path) -> None:
    done = run_service("intake", tmp_path, UR_INTAKE_DATABASE_ULR="sqlite://")
    assert done.returncode == 2
    assert done.stderr.strip() == ("ur-intake: configuration error: UR_INTAKE_DATABASE_ULR: unknown setting "
                                   "(did you mean UR_INTAKE_DATABASE_URL?); see `urctl settings`")


def test_a_bad_file_named_by_a_setting_exits_2_naming_file_and_field(tmp_path: Path) -> None:
    seed = tmp_path / "reviewers.yaml"
    seed.write_text("reviewers:\n  - {reviewer_id: rn-1, name: N, role: nures, credential: RN}\n")
    done = run_service("review", tmp_path, UR_REVIEW_REVIEWERS_SEED=str(seed))
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1] == (
        "ur-review: configuration error: reviewers.yaml: reviewers[0].role: 'nures' is not one of 'nurse', "
        "'physician', 'adjuster', 'supervisor' or 'case_manager'")
    assert not (tmp_path / "review.db").exists()  # files are read before the database is touched


# -- run(), in process -----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("UR_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("UR_VAR_DIR", str(tmp_path))


@dataclass
class FakeRuntime:
    fail_start: bool = False
    stopped: bool = False
    metrics: Metrics = field(default_factory=lambda: Metrics(process_collectors=False))

    def start(self) -> None:
        if self.fail_start:
            raise ConnectionError("broker away")

    def stop(self) -> None:
        self.stopped = True

    @property
    def port(self) -> int:
        return 0

    def serve_forever(self) -> None:
        raise AssertionError("serve_forever after a failed start")


@dataclass
class FakeApp:
    runtime: FakeRuntime


@pytest.mark.usefixtures("environment")
def test_a_configuration_error_while_building_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    def build(settings: AuthorizationSettings) -> FakeApp:
        raise ConfigFileError("x.yaml", "a[0].b", "is required")

    assert main.run(AuthorizationSettings, build, []) == 2
    assert capsys.readouterr().err == "ur-authorization: configuration error: x.yaml: a[0].b: is required\n"


@pytest.mark.usefixtures("environment")
def test_any_other_failure_to_build_or_start_exits_1_and_closes_what_was_opened() -> None:
    def broken(settings: AuthorizationSettings) -> FakeApp:
        raise ConnectionError("database away")

    assert main.run(AuthorizationSettings, broken, []) == 1
    app = FakeApp(FakeRuntime(fail_start=True))
    assert main.run(AuthorizationSettings, lambda settings: app, []) == 1
    assert app.runtime.stopped


def test_plaintext_on_a_public_address_exits_2_before_anything_starts(tmp_path: Path) -> None:
    done = run_service("authorization", tmp_path, UR_AUTHORIZATION_GRPC_LISTEN="0.0.0.0:0")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("ur-authorization: configuration error: UR_AUTHORIZATION_GRPC_LISTEN: 0.0.0.0:0 "
                                  "is not a loopback address and the server has no TLS certificate")
    assert not (tmp_path / "authorization.db").exists()
