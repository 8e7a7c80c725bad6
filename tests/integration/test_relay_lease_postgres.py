"""The outbox relay's lease on PostgreSQL: the scenarios of tests/unit/common/test_relay_lease.py (run
there on SQLite), again on the real database, where rows counted by the driver, row locks and
compare-and-set on the epoch behave as in production."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.unit.common.test_relay_lease import (
    Outbox,
    make_outbox,
    test_a_graceful_stop_hands_the_lease_over_at_once,
    test_a_holder_stalled_before_sending_its_batch_sends_only_copies_when_it_wakes,
    test_a_holder_stalled_past_its_expiry_has_its_marks_refused_and_never_overtakes,
    test_a_replica_restarted_takes_its_lease_back_at_once,
    test_another_replica_takes_over_after_the_expiry,
    test_any_interleaving_of_replicas_keeps_each_keys_order,
    test_only_the_holder_publishes,
    test_two_relays_creating_the_lease_row_agree_on_one_holder,
)

pytestmark = pytest.mark.integration

__all__ = ["test_a_graceful_stop_hands_the_lease_over_at_once",
           "test_a_holder_stalled_before_sending_its_batch_sends_only_copies_when_it_wakes",
           "test_a_holder_stalled_past_its_expiry_has_its_marks_refused_and_never_overtakes",
           "test_a_replica_restarted_takes_its_lease_back_at_once", "test_another_replica_takes_over_after_the_expiry",
           "test_any_interleaving_of_replicas_keeps_each_keys_order", "test_only_the_holder_publishes",
           "test_two_relays_creating_the_lease_row_agree_on_one_holder"]


@pytest.fixture
def box(make_database: Callable[[str], str]) -> Iterator[Outbox]:
    made = make_outbox(make_database("lease"))
    yield made
    made.engine.dispose()
