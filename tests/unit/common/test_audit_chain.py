"""The audit log's hash chain, checkpoints and verification (services/common/audit/chain.py): pure."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

import pytest

from services.common.audit.chain import (
    EMPTY,
    GENESIS,
    AuditEntry,
    AuditRecord,
    ChainHead,
    Checkpoint,
    canonical,
    checkpoint_mac,
    identifier,
    make_checkpoint,
    member_ref,
    seal,
    verify,
)

T0 = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)
KEY = b"an-audit-key-of-32-bytes-or-more!"


def chain(n: int, start: ChainHead = EMPTY) -> list[AuditEntry]:
    """``n`` entries, one a second, each its own seal after the one before."""
    entries: list[AuditEntry] = []
    head = start
    for i in range(n):
        (entry,) = seal([AuditRecord("task.claimed", f"req-{i % 3}", {"line": 1, "task_id": f"t-{i}"},
                                     event_id=f"ev-{i}", actor="reviewer:rn-1")], head, T0 + dt.timedelta(seconds=i))
        entries.append(entry)
        head = ChainHead(entry.seq, entry.hash)
    return entries


def head_of(entries: list[AuditEntry]) -> ChainHead:
    return ChainHead(entries[-1].seq, entries[-1].hash) if entries else EMPTY


def checkpoint_at(entries: list[AuditEntry], seq: int, key: bytes = KEY, service: str = "review") -> Checkpoint:
    entry = entries[seq - 1]
    return make_checkpoint(key, service, ChainHead(entry.seq, entry.hash), entry.at + dt.timedelta(minutes=1))


# -- sealing ---------------------------------------------------------------------------------------

def test_entries_are_numbered_from_one_and_each_names_the_hash_before_it() -> None:
    entries = chain(3)
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[0].prev_hash == GENESIS
    assert [e.prev_hash for e in entries[1:]] == [e.hash for e in entries[:-1]]
    assert all(e.computed_hash() == e.hash for e in entries)


def test_the_hash_is_sha256_of_a_canonical_encoding_that_does_not_drift() -> None:
    (entry,) = seal([AuditRecord("request.viewed", "req-1", {"status": "in_review", "line": 2}, actor="anonymous")],
                    EMPTY, T0)
    encoded = canonical(1, T0, "anonymous", "request.viewed", "req-1", {"line": 2, "status": "in_review"}, "", GENESIS)
    # Sorted keys, no spaces, UTC with microseconds: the bytes a verifier elsewhere recomputes.
    assert encoded == (b'{"action":"request.viewed","actor":"anonymous","at":"2026-03-01T09:30:00.000000Z",'
                       b'"event_id":"","prev":"' + GENESIS.encode() + b'","refs":{"line":2,"status":"in_review"},'
                       b'"request_id":"req-1","seq":1}')
    assert entry.hash == hashlib.sha256(encoded).hexdigest()


def test_sealing_after_a_head_continues_its_numbers_and_hash() -> None:
    first = chain(2)
    more = seal([AuditRecord("task.released", "req-9", actor="reviewer:rn-1")], head_of(first), T0)
    assert more[0].seq == 3
    assert more[0].prev_hash == first[-1].hash


def test_a_record_without_an_actor_or_with_a_member_id_is_never_sealed() -> None:
    with pytest.raises(ValueError, match="no actor"):
        seal([AuditRecord("request.viewed", "req-1")], EMPTY, T0)
    with pytest.raises(ValueError, match="member"):
        seal([AuditRecord("request.viewed", "req-1", actor="anonymous", member_id="MA100001")], EMPTY, T0)


@pytest.mark.parametrize(("record", "problem"), [
    (lambda: AuditRecord("viewed"), "dotted name"),
    (lambda: AuditRecord("request.viewed", refs={"note": "x"}), "not one of the identifiers"),
    (lambda: AuditRecord("request.viewed", refs={"reviewer_id": "Maria Lopez"}), "no spaces"),
    (lambda: AuditRecord("request.viewed", refs={"kind": "denied for lack of six weeks"}), "no spaces"),
    (lambda: AuditRecord("request.viewed", request_id="req 1"), "not an identifier"),
    (lambda: AuditRecord("request.viewed", actor="Dr Patel"), "anonymous or kind:id"),
])
def test_free_text_cannot_get_into_a_record(record: object, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        record()  # type: ignore[operator]


def test_refs_hold_text_or_whole_numbers_only() -> None:
    with pytest.raises(TypeError):
        AuditRecord("request.viewed", refs={"count": 1.5})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        AuditRecord("request.viewed", refs={"count": True})


def test_a_member_reference_is_opaque_and_stable_under_one_key() -> None:
    ref = member_ref(KEY, "MA100001")
    assert ref.startswith("m-")
    assert len(ref) == 22
    assert "MA100001" not in ref
    assert ref == member_ref(KEY, "MA100001") != member_ref(b"another-key-of-enough-bytes", "MA100001")


# -- verification ----------------------------------------------------------------------------------

def test_an_untouched_log_verifies() -> None:
    entries = chain(10)
    result = verify("review", entries, [checkpoint_at(entries, 6)], KEY, head_of(entries))
    assert result.ok
    assert (result.entries, result.last_seq, result.last_checkpoint_seq, result.unverified_tail) == (10, 10, 6, 4)


def test_an_empty_log_verifies() -> None:
    result = verify("review", [], [], KEY, EMPTY)
    assert result.ok
    assert result.entries == 0


def test_an_edited_entry_is_named() -> None:
    entries = chain(10)
    entries[4] = dataclasses.replace(entries[4], refs={"line": 2, "task_id": "t-4"})
    result = verify("review", entries, [], KEY, head_of(entries))
    assert result.problem is not None
    assert (result.problem.seq, result.problem.kind) == (5, "altered")


def test_an_edited_entry_whose_hash_was_recomputed_breaks_the_next_link() -> None:
    entries = chain(10)
    edited = dataclasses.replace(entries[4], actor="reviewer:md-2")
    entries[4] = dataclasses.replace(edited, hash=edited.computed_hash())
    result = verify("review", entries, [], KEY, head_of(entries))
    assert result.problem is not None
    assert (result.problem.seq, result.problem.kind) == (6, "broken_link")


def test_a_deleted_entry_is_named() -> None:
    entries = chain(10)
    del entries[3]
    result = verify("review", entries, [], KEY, head_of(entries))
    assert result.problem is not None
    assert (result.problem.seq, result.problem.kind) == (4, "missing")
    assert "entry 4 is missing" in result.problem.detail


def test_reordered_entries_are_named() -> None:
    entries = chain(10)
    # Entries 4 and 5 trade places (their numbers with them).
    a, b = entries[3], entries[4]
    entries[3], entries[4] = dataclasses.replace(b, seq=4), dataclasses.replace(a, seq=5)
    result = verify("review", entries, [], KEY, head_of(entries))
    assert result.problem is not None
    assert (result.problem.seq, result.problem.kind) == (4, "out_of_order")
    assert "written as number 5" in result.problem.detail


def test_a_truncated_tail_is_found_by_the_checkpoint_that_names_it() -> None:
    entries = chain(10)
    cp = checkpoint_at(entries, 9)
    kept = entries[:6]  # entries 7 to 10 cut off, and the head moved back to match
    result = verify("review", kept, [cp], KEY, head_of(kept))
    assert result.problem is not None
    assert (result.problem.seq, result.problem.kind) == (7, "truncated")
    assert "entries 7 to 9 are gone" in result.problem.detail


def test_a_truncated_tail_is_also_found_by_the_chain_head() -> None:
    entries = chain(10)
    result = verify("review", entries[:8], [], KEY, head_of(entries))
    assert result.problem is not None
    assert (result.problem.seq, result.problem.kind) == (9, "truncated")


def test_entries_after_the_last_checkpoint_are_counted_as_not_covered() -> None:
    entries = chain(10)
    cut = entries[:8]  # a cut after the last checkpoint (at 6) goes unnoticed: the report says so
    result = verify("review", cut, [checkpoint_at(entries, 6)], KEY, head_of(cut))
    assert result.ok
    assert (result.last_checkpoint_seq, result.unverified_tail) == (6, 2)


def test_a_rewritten_chain_does_not_match_its_checkpoint() -> None:
    entries = chain(6)
    cp = checkpoint_at(entries, 6)
    # Everything re-sealed from entry 3 on with one entry changed: consistent, but not what was signed.
    rewritten = entries[:2] + seal(
        [AuditRecord(e.action, e.request_id, e.refs, e.event_id, "reviewer:someone-else") for e in entries[2:]],
        head_of(entries[:2]), T0)
    result = verify("review", rewritten, [cp], KEY, head_of(rewritten))
    assert result.problem is not None
    assert (result.problem.seq, result.problem.kind) == (6, "rewritten")


def test_a_checkpoint_not_signed_with_the_key_is_refused() -> None:
    entries = chain(5)
    forged = checkpoint_at(entries, 5, key=b"not-the-audit-key-at-all-nope")
    result = verify("review", entries, [forged], KEY, head_of(entries))
    assert result.problem is not None
    assert result.problem.kind == "bad_checkpoint"


def test_a_checkpoint_of_another_service_is_refused() -> None:
    entries = chain(5)
    result = verify("review", entries, [checkpoint_at(entries, 5, service="intake")], KEY, head_of(entries))
    assert result.problem is not None
    assert result.problem.kind == "bad_checkpoint"


def test_without_the_key_checkpoints_still_find_a_truncation_but_are_not_signature_checked() -> None:
    entries = chain(10)
    result = verify("review", entries[:5], [checkpoint_at(entries, 8)], None, head_of(entries[:5]))
    assert not result.signed
    assert result.problem is not None
    assert result.problem.kind == "truncated"


def test_the_first_bad_entry_is_the_earliest_of_several() -> None:
    entries = chain(10)
    cp = checkpoint_at(entries, 10)
    del entries[9]  # truncated at 10
    entries[2] = dataclasses.replace(entries[2], action="task.released")  # and 3 edited
    result = verify("review", entries, [cp], KEY, head_of(entries))
    assert result.problem is not None
    assert result.problem.seq == 3


def test_checkpoint_signatures_cover_service_number_head_and_time() -> None:
    mac = checkpoint_mac(KEY, "review", 5, "ab" * 32, T0)
    assert mac != checkpoint_mac(KEY, "intake", 5, "ab" * 32, T0)
    assert mac != checkpoint_mac(KEY, "review", 6, "ab" * 32, T0)
    assert mac != checkpoint_mac(KEY, "review", 5, "cd" * 32, T0)
    assert mac != checkpoint_mac(KEY, "review", 5, "ab" * 32, T0 + dt.timedelta(microseconds=1))


def test_an_identifier_a_caller_chose_is_kept_when_a_token_and_digested_otherwise() -> None:
    assert identifier("CLM-0001/1") == "CLM-0001/1"
    digested = identifier("${jndi:ldap://x} or a name like Maria Lopez")
    assert digested.startswith("h-")
    assert len(digested) == 18
    assert digested == identifier("${jndi:ldap://x} or a name like Maria Lopez")
    AuditRecord("notice.listed", digested, {"claim_line_id": identifier("line 1 of claim 7")})  # accepted
