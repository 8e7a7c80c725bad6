"""Who may obtain the doors' access tokens: the platform's credentials file (issue 10), once merged."""

from __future__ import annotations

from services.common.errors import ConfigurationError
from services.common.settings import FhirSettings
from services.intake.service_layer.door_ports import ClientDirectory


def credentials_directory(config: FhirSettings) -> ClientDirectory:
    raise ConfigurationError("the FHIR door authenticates against the platform's credentials file (issue 10)")
