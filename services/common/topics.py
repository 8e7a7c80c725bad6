"""Kafka topic names (no dependencies: service layers import it)."""

from __future__ import annotations

from dataclasses import dataclass

SERVICES = ("intake", "review", "authorization")


@dataclass(frozen=True)
class Topics:
    """Kafka topic names; every event topic is versioned with its schema."""

    prefix: str

    @property
    def request_submitted(self) -> str:
        return f"{self.prefix}.intake.request-submitted.v1"

    @property
    def determination_made(self) -> str:
        return f"{self.prefix}.review.determination-made.v1"

    @property
    def authorizations_issued(self) -> str:
        return f"{self.prefix}.authorization.authorizations-issued.v1"

    @property
    def additional_information(self) -> str:
        return f"{self.prefix}.intake.additional-information.v1"

    @property
    def review_alerts(self) -> str:
        return f"{self.prefix}.review.alerts.v1"

    @property
    def request_updated(self) -> str:
        """RequestCancelled and RequestRevised, keyed by request id (intake -> review)."""
        return f"{self.prefix}.intake.request-updated.v1"

    @property
    def appeal_filed(self) -> str:
        return f"{self.prefix}.intake.appeal-filed.v1"

    @property
    def notice_issued(self) -> str:
        return f"{self.prefix}.review.notice-issued.v1"

    def consumer_group(self, service: str) -> str:
        """Groups carry the prefix too: platforms sharing a cluster must not share groups."""
        return f"{self.prefix}.{service}"

    def dead_letter(self, service: str) -> str:
        return f"{self.prefix}.{service}.dead-letter.v1"

    def all(self) -> list[str]:
        return [self.request_submitted, self.determination_made, self.authorizations_issued,
                self.additional_information, self.review_alerts, self.request_updated, self.appeal_filed,
                self.notice_issued, *(self.dead_letter(s) for s in SERVICES)]
