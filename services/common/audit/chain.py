"""The audit log's hash chain and signed checkpoints, and their verification. Pure: no I/O, no clock.

Each service keeps one chain (services/common/audit/store.py stores it). An entry says who did what
to which object, when, and which event it came from; it never holds free text about a patient:

* ``action`` is a dotted name (``request.submitted``, ``task.claimed``, ``notice.viewed``);
* ``refs`` take only the keys of :data:`REF_KEYS` (identifiers, codes and counts), and every value is
  a number or a token without spaces (:data:`TOKEN`), so a name, a note or a reason cannot be put
  in one by mistake; a member appears only as an opaque reference (``member_ref``: ``m-`` and 20 hex
  digits of HMAC-SHA256 of the member id, made by the store with the audit key);
* the actor is ``reviewer:<id>``, ``service:<name>``, ``caller:<principal>`` or ``anonymous``
  (services/common/audit/actor.py).

The chain. Entry *n* (from 1) carries the hash of entry *n-1* (:data:`GENESIS` for the first) and its
own hash, SHA-256 over :func:`canonical`, a JSON encoding with sorted keys and no spaces of every
field, sequence number included. Changing an entry changes its hash; deleting one leaves a gap in the
numbers; moving one breaks its link and its hash. Rewriting the whole tail consistently is possible
for someone who can write the table, and so is cutting it off: the checkpoints are for that.

A checkpoint is HMAC-SHA256, under a key the database does not hold, of (service, sequence number,
head hash, time) (:func:`checkpoint_mac`): a later verification with the key finds an entry the
checkpoint names gone (a truncated tail) or hashing otherwise (a rewritten one). Entries written
after the last checkpoint are chained but not yet covered: :class:`Verification` counts them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: The previous hash of the first entry.
GENESIS = "0" * 64

#: What an entry may name besides its request. Identifiers, codes and counts only.
REF_KEYS = frozenset({
    "line", "lines", "task_id", "determination_id", "authorization_number", "appeal_id", "notice_id",
    "information_id", "revision_id", "note_id", "claim_line_id", "member_ref", "reviewer_id", "assigned_to",
    "status", "outcome", "action", "decider", "urgency", "kind", "recipient", "count", "units", "emitted",
    "regime", "ground", "procedure_code", "page", "appeal_outcome", "amends",
})

#: A value of ``refs`` that is text: an identifier or a code, never prose.
TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+=#-]{0,199}")
_ACTION = re.compile(r"[a-z][a-z_]*(\.[a-z][a-z_]*)+")
_ACTOR = re.compile(r"anonymous|(reviewer|service|caller|submitter):[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,99}")

RefValue = str | int


def _check_ref(key: str, value: object) -> None:
    if key not in REF_KEYS:
        raise ValueError(f"audit refs: {key!r} is not one of the identifiers an entry may carry")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"audit refs: {key} must be text or a whole number, not {type(value).__name__}")
    if isinstance(value, str) and not TOKEN.fullmatch(value):
        raise ValueError(f"audit refs: {key} must be an identifier or a code (no spaces), got {value[:40]!r}")


def identifier(text: str) -> str:
    """``text`` as an entry may carry it when a caller chose it (a claim line id, an id searched for):
    itself when it is a token, else ``h-`` and 16 hex digits of its SHA-256 (still comparable, never
    prose)."""
    if TOKEN.fullmatch(text):
        return text
    return "h-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass(frozen=True)
class AuditRecord:
    """What a use case records, before it is sealed into the chain.

    ``actor`` empty: the store takes the current actor (services/common/audit/actor.py) or, outside
    any call, the service itself. ``member_id`` is turned into ``refs["member_ref"]`` by the store
    (with the audit key; left out without one) and is itself never stored or hashed. ``event_id``:
    the event the entry came from (the event consumed, or the event that announces the change)."""

    action: str
    request_id: str = ""
    refs: Mapping[str, RefValue] = field(default_factory=dict)
    event_id: str = ""
    actor: str = ""
    member_id: str = ""

    def __post_init__(self) -> None:
        if not _ACTION.fullmatch(self.action):
            raise ValueError(f"audit action {self.action!r} is not a dotted name like 'request.viewed'")
        for name, text in (("request_id", self.request_id), ("event_id", self.event_id)):
            if text and not TOKEN.fullmatch(text):
                raise ValueError(f"audit {name} {text[:40]!r} is not an identifier")
        if self.actor and not _ACTOR.fullmatch(self.actor):
            raise ValueError(f"audit actor {self.actor[:40]!r} is not anonymous or kind:id")
        for key, value in self.refs.items():
            _check_ref(key, value)


@dataclass(frozen=True)
class ChainHead:
    """The last entry's sequence number and hash (0 and :data:`GENESIS` for an empty chain)."""

    seq: int
    hash: str


EMPTY = ChainHead(0, GENESIS)


@dataclass(frozen=True)
class AuditEntry:
    """One sealed entry, as stored."""

    seq: int
    at: dt.datetime  # aware
    actor: str
    action: str
    request_id: str
    refs: Mapping[str, RefValue]
    event_id: str
    prev_hash: str
    hash: str

    def computed_hash(self, seq: int | None = None) -> str:
        """The hash its content gives (at position ``seq``, its own by default)."""
        return entry_hash(self.seq if seq is None else seq, self.at, self.actor, self.action, self.request_id,
                          self.refs, self.event_id, self.prev_hash)


def timestamp(at: dt.datetime) -> str:
    """The instant as the chain encodes it: UTC, microseconds, ``Z``."""
    if at.tzinfo is None:
        raise ValueError("audit times are aware")
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def canonical(seq: int, at: dt.datetime, actor: str, action: str, request_id: str, refs: Mapping[str, RefValue],
              event_id: str, prev_hash: str) -> bytes:
    """The bytes an entry's hash is taken over: every field, as JSON with sorted keys and no spaces."""
    return _json({"seq": seq, "at": timestamp(at), "actor": actor, "action": action, "request_id": request_id,
                  "refs": dict(refs), "event_id": event_id, "prev": prev_hash})


def refs_text(refs: Mapping[str, RefValue]) -> str:
    """``refs`` as stored: canonical JSON."""
    return _json(refs).decode("ascii")


def entry_hash(seq: int, at: dt.datetime, actor: str, action: str, request_id: str, refs: Mapping[str, RefValue],
               event_id: str, prev_hash: str) -> str:
    return hashlib.sha256(canonical(seq, at, actor, action, request_id, refs, event_id, prev_hash)).hexdigest()


def seal(records: Sequence[AuditRecord], head: ChainHead, at: dt.datetime) -> list[AuditEntry]:
    """The records as the entries that follow ``head``, in order, all at ``at``. Each record's actor
    and refs are taken as given: the store has already filled in the actor and the member reference."""
    entries: list[AuditEntry] = []
    seq, previous = head.seq, head.hash
    for record in records:
        if not record.actor:
            raise ValueError(f"audit record {record.action}: no actor")
        if record.member_id:
            raise ValueError(f"audit record {record.action}: a member id is never sealed (make a member_ref)")
        seq += 1
        refs = dict(sorted(record.refs.items()))
        digest = entry_hash(seq, at, record.actor, record.action, record.request_id, refs, record.event_id, previous)
        entries.append(AuditEntry(seq, at, record.actor, record.action, record.request_id, refs, record.event_id,
                                  previous, digest))
        previous = digest
    return entries


def member_ref(key: bytes, member_id: str) -> str:
    """The opaque reference of a member under ``key`` (the form the workbench's access log uses)."""
    return "m-" + hmac.new(key, member_id.encode("utf-8"), hashlib.sha256).hexdigest()[:20]


# -- checkpoints ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement that entry ``seq`` of ``service``'s chain hashed to ``head_hash`` at ``at``."""

    seq: int
    head_hash: str
    at: dt.datetime
    mac: str


def checkpoint_mac(key: bytes, service: str, seq: int, head_hash: str, at: dt.datetime) -> str:
    """HMAC-SHA256 under ``key`` of (service, sequence number, head hash, time), hex."""
    message = _json({"service": service, "seq": seq, "head": head_hash, "at": timestamp(at)})
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def make_checkpoint(key: bytes, service: str, head: ChainHead, at: dt.datetime) -> Checkpoint:
    return Checkpoint(head.seq, head.hash, at, checkpoint_mac(key, service, head.seq, head.hash, at))


# -- verification --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """The first entry found bad, and why. ``kind``: ``missing`` (deleted), ``altered`` (its content
    no longer gives its hash), ``out_of_order`` (moved), ``broken_link`` (it does not follow the entry
    before it: that one or this link was rewritten), ``truncated`` (a checkpoint or the chain head
    names entries that are gone), ``rewritten`` (an entry a checkpoint names hashes otherwise),
    ``bad_checkpoint`` (a checkpoint the key did not sign)."""

    seq: int
    kind: str
    detail: str


@dataclass(frozen=True)
class Verification:
    """The outcome of :func:`verify` for one service's log."""

    service: str
    entries: int
    last_seq: int
    checkpoints: int
    #: The newest checkpoint that matched the log (signature checked when a key was given).
    last_checkpoint_seq: int | None
    #: Entries after :attr:`last_checkpoint_seq`: chained, but a cut among them would go unnoticed.
    unverified_tail: int
    signed: bool  # whether checkpoint signatures were checked (a key was given)
    problem: Problem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


#: How far from its place a moved entry is looked for (each try is one SHA-256).
REORDER_WINDOW = 256


def _written_as(entry: AuditEntry, by_hash: Mapping[str, int]) -> int | None:
    """The number ``entry`` was written as, when its content is intact but it stands elsewhere: the
    place after the entry it names as previous (where that one stands now), or a place nearby."""
    origin = by_hash.get(entry.prev_hash)
    candidates = [origin + 1] if origin is not None else []
    candidates += [n for d in range(1, REORDER_WINDOW + 1) for n in (entry.seq - d, entry.seq + d) if n >= 1]
    return next((n for n in candidates if n != entry.seq and entry.computed_hash(n) == entry.hash), None)


def _classify(entry: AuditEntry, expected: int, previous: str, by_hash: Mapping[str, int]) -> Problem | None:
    """What is wrong with ``entry`` standing at position ``expected`` after a hash ``previous`` (None: nothing)."""
    if entry.seq != expected:
        gone = f"entry {expected} is" if entry.seq == expected + 1 else f"entries {expected} to {entry.seq - 1} are"
        return Problem(expected, "missing", f"{gone} missing: entry {entry.seq} follows entry {expected - 1} (deleted)")
    if entry.computed_hash() != entry.hash:
        written = _written_as(entry, by_hash)
        if written is not None:
            return Problem(entry.seq, "out_of_order",
                           f"entry {entry.seq} holds the entry written as number {written} (entries were reordered)")
        return Problem(entry.seq, "altered", f"entry {entry.seq} ({entry.action}) does not match its hash: its content "
                                             "was changed after it was written")
    if entry.prev_hash != previous:
        origin = by_hash.get(entry.prev_hash)
        if origin is not None:
            return Problem(entry.seq, "out_of_order", f"entry {entry.seq} follows entry {origin}, not entry "
                                                      f"{entry.seq - 1} (entries were reordered)")
        return Problem(entry.seq, "broken_link", f"entry {entry.seq} does not follow entry {entry.seq - 1}: the "
                                                 f"hash it names is not entry {entry.seq - 1}'s (one of them, or the "
                                                 "chain before, was rewritten)")
    return None


def _chain_problem(entries: Sequence[AuditEntry]) -> Problem | None:
    by_hash = {e.hash: e.seq for e in entries}
    previous, expected = GENESIS, 1
    for entry in entries:
        problem = _classify(entry, expected, previous, by_hash)
        if problem is not None:
            return problem
        previous, expected = entry.hash, expected + 1
    return None


def _checkpoint_problems(service: str, entries: Sequence[AuditEntry], checkpoints: Sequence[Checkpoint],
                         key: bytes | None) -> tuple[list[Problem], int | None]:
    """Problems the checkpoints reveal, and the newest checkpoint that matched."""
    by_seq = {e.seq: e for e in entries}
    last = entries[-1].seq if entries else 0
    problems: list[Problem] = []
    matched: int | None = None
    for cp in sorted(checkpoints, key=lambda c: (c.seq, c.at)):
        when = timestamp(cp.at)
        if key is not None and not hmac.compare_digest(cp.mac, checkpoint_mac(key, service, cp.seq, cp.head_hash,
                                                                               cp.at)):
            problems.append(Problem(cp.seq, "bad_checkpoint", f"the checkpoint of {when} naming entry {cp.seq} is not "
                                                              "signed with this key (forged or altered)"))
            continue
        if cp.seq > last:
            problems.append(Problem(last + 1, "truncated",
                                    f"the checkpoint of {when} covers entries up to {cp.seq}, but the log ends at "
                                    f"entry {last}: entries {last + 1} to {cp.seq} are gone (truncated)"))
            continue
        if cp.seq == 0:
            matched = 0 if matched is None else matched
            continue
        held = by_seq.get(cp.seq)
        if held is None or held.hash != cp.head_hash:
            problems.append(Problem(cp.seq, "rewritten", f"the checkpoint of {when} says entry {cp.seq} hashed to "
                                                         f"{cp.head_hash[:16]}…; it does not now (entries up to "
                                                         f"{cp.seq} were rewritten)"))
            continue
        matched = cp.seq
    return problems, matched


def verify(service: str, entries: Sequence[AuditEntry], checkpoints: Sequence[Checkpoint] = (),
           key: bytes | None = None, head: ChainHead | None = None) -> Verification:
    """Check ``service``'s log: ``entries`` as stored, in sequence order; its checkpoints (their
    signatures too when ``key`` is given); and ``head``, the chain head the store keeps, which names
    the last entry written. The :attr:`Verification.problem` is the first bad entry found."""
    problems: list[Problem] = []
    chain = _chain_problem(entries)
    if chain is not None:
        problems.append(chain)
    found, matched = _checkpoint_problems(service, entries, checkpoints, key)
    problems += found
    last = entries[-1].seq if entries else 0
    if head is not None and head.seq > last:
        problems.append(Problem(last + 1, "truncated", f"the chain head names entry {head.seq}, but the log ends at "
                                                       f"entry {last}: entries {last + 1} to {head.seq} are gone"))
    elif head is not None and entries and head.seq == last and head.hash != entries[-1].hash:
        problems.append(Problem(last, "rewritten", f"the chain head says entry {last} hashed to {head.hash[:16]}…; "
                                                   "it does not now"))
    # The earliest entry wins; at one entry the chain's own finding is the more precise.
    order = {"missing": 0, "altered": 1, "out_of_order": 2, "broken_link": 3}
    first = min(problems, key=lambda p: (p.seq, order.get(p.kind, 9))) if problems else None
    covered = matched or 0
    return Verification(service=service, entries=len(entries), last_seq=last, checkpoints=len(checkpoints),
                        last_checkpoint_seq=matched, unverified_tail=max(0, last - covered), signed=key is not None,
                        problem=first)
