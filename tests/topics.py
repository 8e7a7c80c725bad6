"""Topic prefixes of this test run, so that the run can delete its topics when it ends.

Every test that starts services or clients on the shared broker takes its prefix from
:func:`new_topic_prefix`; the session's ``kafka_bootstrap`` fixture deletes every topic under those
prefixes at the end. Without it each run left a few thousand partitions behind, and a long-lived
development broker eventually died of "Too many open files" (issue 17: the cluster must not grow
with every run)."""

from __future__ import annotations

import logging
import uuid

from kafka.errors import KafkaError

logger = logging.getLogger(__name__)

_PREFIXES: list[str] = []


def new_topic_prefix(kind: str = "urt") -> str:
    """A fresh topic prefix, remembered for deletion at the end of the run."""
    prefix = f"{kind}{uuid.uuid4().hex[:10]}"
    _PREFIXES.append(prefix)
    return prefix


def delete_run_topics(bootstrap: str) -> int:
    """Delete the topics under this run's prefixes from the broker; how many were deleted. A broker
    that does not answer is logged, not raised: the tests have already passed or failed."""
    if not _PREFIXES:
        return 0
    from services.common.kafka_io import delete_topics_under

    try:
        doomed = delete_topics_under(bootstrap, _PREFIXES)
    except (KafkaError, OSError) as exc:
        logger.warning("could not delete this run's topics from %s: %s", bootstrap, exc)
        return 0
    _PREFIXES.clear()
    return len(doomed)
