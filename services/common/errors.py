"""The platform's errors, free of any transport. Entry points translate them at the seam (gRPC:
``services/common/grpc_errors.py``, a table; CLI: exit codes), adapters translate storage errors into
them (``raise DuplicateKey(...) from exc``).

    PlatformError
    ├── ServiceError                 a use case refused: the caller can act on it
    │   ├── ValidationFailed         field-level problems (FieldViolation), nothing written
    │   ├── IdempotencyConflict      a key reused with a different body
    │   ├── NotFound
    │   ├── Unauthenticated          no or unknown credentials
    │   ├── PermissionDenied         authenticated, not allowed
    │   ├── FailedPrecondition       not in a state that allows it
    │   ├── ResourceExhausted        capacity, quota or rate limit
    │   └── Unavailable              a dependency is down; retry later
    ├── DuplicateKey                 storage said a unique key exists (adapters raise, use cases catch)
    ├── PoisonMessage                a consumed event can never be applied (dead-lettered)
    └── ConfigurationError           a setting or configuration file is wrong (CLI/process exit 2)

    TransientError                   applying a consumed event failed for a reason that may pass
                                     (the consumer loop retries; deliberately not a PlatformError)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class PlatformError(Exception):
    """Base of every error the platform raises on purpose."""


class ServiceError(PlatformError):
    """Base of the errors a use case raises for its caller."""


class ValidationFailed(ServiceError):
    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        self.violations = tuple(violations)
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in self.violations))


class IdempotencyConflict(ServiceError):
    pass


class NotFound(ServiceError):
    pass


class PermissionDenied(ServiceError):
    pass


class Unauthenticated(ServiceError):
    pass


class FailedPrecondition(ServiceError):
    pass


class ResourceExhausted(ServiceError):
    """Capacity, quota or rate limit; ``retry_after_s``, when known, is when trying again may succeed (a
    gRPC answer carries it as google.rpc.RetryInfo)."""

    def __init__(self, message: str = "", *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(ServiceError):
    """A dependency (database, broker, another service) cannot be reached; the call may be retried,
    after about ``retry_after_s`` seconds (google.rpc.RetryInfo in a gRPC answer)."""

    def __init__(self, message: str = "", *, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DuplicateKey(PlatformError):
    """A unique key already holds a row: the storage adapter's translation of an integrity error."""


class PoisonMessage(PlatformError):
    """This event can never be applied (malformed, or violates the contract): the consumer loop
    (``services/common/consumer.py``) parks it on the dead-letter topic and goes on."""


class ConfigurationError(PlatformError):
    """A setting or configuration file is wrong; the message names the file or setting and the field."""


class TransientError(Exception):
    """Applying failed for a reason that may pass (database or peer unavailable): the consumer loop
    (``services/common/consumer.py``) rewinds and retries with backoff."""
