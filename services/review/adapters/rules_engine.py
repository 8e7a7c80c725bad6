"""durable-rules as the :class:`ConditionMatcher`: one ruleset per criteria version, one rule per
condition.

How a line is matched: its usable facts are asserted as one durable-rules *fact* under a fresh
session id (sid); every rule whose condition holds fires (an asserted fact, unlike a posted event,
is not consumed by the first rule that matches it), each action records its condition id (actions
run synchronously inside ``assert_fact``, under the module lock, so one list is that line's record),
and the session is deleted before returning, so the engine keeps nothing per line. Everything about
a ruleset that does not depend on the line (its name, how each fact becomes an engine value) is
compiled once; per line there is one fact to build, one assert and one delete.

Quirks of durable-rules 2.0.28 this module works around (each one observed here):

* ``durable.engine.Host`` starts background timer threads that call ``start_action`` on every
  ruleset about five times a second, outside any lock of ours. Under load they steal the action of
  a line being evaluated (the firing is lost, or runs late on another thread) and can crash the
  process. This module therefore keeps its own host whose dispatcher is never started: every action
  here completes synchronously inside ``assert_fact``.
* The module-level ``durable.lang.ruleset`` registers itself in a global table that the next
  ``durable.lang.get_host()`` call, anyone's, loads into the shared host. Rules are therefore built
  with ``when_all``/``m`` and registered on the private host directly.
* A ruleset name can be registered once per host; a registry maps ``id@version`` to the content
  hash it was compiled from, and a different content under the same name is refused.
* An action with two parameters is taken to be asynchronous (it must call back), and exceptions
  in actions are swallowed into the session state, so actions take exactly one parameter and do
  nothing that can fail.
* Asserting a fact that no rule matches raises ``MessageNotHandledException`` and leaves a session
  whose deletion can then crash the process (SIGSEGV or abort, depending on heap layout; seen
  here on the second version of a one-rule set). Every ruleset therefore carries a catch-all rule
  that matches every line, so no assert goes unhandled. A failed assert may leave no session, and
  deleting a session that does not exist raises.
* A ruleset holds at most about 1,024 live sessions; the next assert raises ``MemoryError``.
  Deleting each line's session at once is what keeps the engine usable, not a nicety.
* Its JSON parser rejects some exponent notation ("1e+16", "1e-05") that Python's ``json`` writes
  for magnitudes >= 1e16 or < 1e-4. Numbers are therefore sent as proxies with the same order
  relative to every threshold a ruleset may contain, and thresholds are limited to that range.
* It is not thread-safe: every call into it holds one module-level lock.

Facts are stored under ``f_<name>`` so no fact name can collide with the engine's own ``sid`` and
``id``; booleans go as JSON booleans, numbers as floats, text as strings, dates as ordinal days.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import operator
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from durable import engine
from durable.lang import m, when_all

from services.review.domain.criteria import (
    SET_OPS,
    ConditionMatcher,
    CriteriaSet,
    FactType,
    FactValue,
    LineFacts,
    Op,
    Predicate,
    usable_facts,
)

logger = logging.getLogger(__name__)

# Thresholds must lie in this band (or be zero) so that facts outside it can be sent as proxies.
MIN_THRESHOLD = 1e-3
MAX_THRESHOLD = 1e15
_TINY_PROXY = 5e-4  # strictly between 0 and any allowed non-zero threshold; JSON "0.0005"
_CATCH_ALL = "every_line"
_LINE_FIELD = "kind"
_LINE_VALUE = "line"


class RulesEngineError(RuntimeError):
    """durable-rules refused a ruleset or a fact; the line cannot be matched."""


class _SynchronousHost(engine.Host):  # type: ignore[misc]  # durable has no type information
    """A durable-rules host without the background dispatcher threads (see the module docstring)."""

    def _run(self) -> None:
        return None


@dataclass(frozen=True)
class _Compiled:
    name: str
    content_hash: str
    # (fact name, engine field, engine value of a usable fact) for every declared fact, in order
    facts: tuple[tuple[str, str, Callable[[Any], bool | float | int | str]], ...] = ()


_LOCK = threading.Lock()
_host: _SynchronousHost | None = None  # created on first use: nothing starts at import time
_registered: dict[str, _Compiled] = {}
# The conditions that fired for the line being asserted. Actions run only inside assert_fact, for
# the session just asserted (the host has no dispatcher threads), and every call into the engine
# holds _LOCK: one list, cleared before each assert, is that line's record.
_fired: list[str] = []
_sids = itertools.count(1)


def ruleset_name(criteria: CriteriaSet) -> str:
    return f"{criteria.id}@{criteria.version}"


def registered_rulesets() -> frozenset[str]:
    """Names of the rulesets compiled in this process."""
    with _LOCK:
        return frozenset(_registered)


def _field(name: str) -> Any:
    # m.<attr> would return value's own methods for names such as "matches" or "define".
    return m.__getattr__(f"f_{name}")


def engine_number(x: float) -> float:
    """A float the engine parses, ordered like ``x`` against every allowed threshold."""
    x = float(x)
    if x == 0:
        return 0.0
    if abs(x) >= MAX_THRESHOLD:
        return math.copysign(MAX_THRESHOLD, x)
    if abs(x) < MIN_THRESHOLD:
        return math.copysign(_TINY_PROXY, x)
    return x


def _engine_value(ftype: FactType, value: FactValue) -> bool | float | int | str:
    if ftype is FactType.BOOL:
        return bool(value)
    if ftype is FactType.NUMBER:
        return engine_number(_number(value))
    if ftype is FactType.DATE:
        if isinstance(value, bool | int | float | str):
            raise TypeError(f"{value!r} is not a date")
        return value.toordinal()
    return str(value)


def _number(value: FactValue) -> float:
    if not isinstance(value, int | float):
        raise TypeError(f"{value!r} is not a number")
    return float(value)


def _identity(value: Any) -> Any:
    return value


def _to_ordinal(value: Any) -> int:
    return int(value.toordinal())


# How a usable fact (one that FactSpec.accepts) becomes an engine value: what _engine_value does,
# without deciding the type per call. Usable booleans and texts are already what the engine takes.
_CONVERTERS: dict[FactType, Callable[[Any], bool | float | int | str]] = {
    FactType.BOOL: _identity, FactType.NUMBER: engine_number, FactType.TEXT: str, FactType.DATE: _to_ordinal}


def _threshold(criteria: CriteriaSet, p: Predicate, value: FactValue) -> bool | float | int | str:
    ftype = criteria.fact(p.fact).type
    if ftype is FactType.NUMBER:
        number = _number(value)
        if number != 0 and not MIN_THRESHOLD <= abs(number) < MAX_THRESHOLD:
            raise RulesEngineError(f"{criteria.key}: threshold {value!r} of fact {p.fact!r} is outside what the rules "
                                   f"engine represents exactly (0, or {MIN_THRESHOLD} <= |x| < {MAX_THRESHOLD:g})")
        return number
    return _engine_value(ftype, value)


def _expression(criteria: CriteriaSet, p: Predicate) -> Any:
    field = _field(p.fact)
    if p.op in SET_OPS:
        values = [_threshold(criteria, p, v) for v in p.values()]
        if p.op is Op.IN:
            return functools.reduce(operator.or_, [field == v for v in values])
        return functools.reduce(operator.and_, [field != v for v in values])
    v = _threshold(criteria, p, p.single())
    compare: dict[Op, Callable[[Any, Any], Any]] = {
        Op.EQ: operator.eq, Op.NE: operator.ne, Op.GT: operator.gt, Op.GE: operator.ge,
        Op.LT: operator.lt, Op.LE: operator.le}
    return compare[p.op](field, v)


def _recorder(condition_id: str) -> Callable[[Any], None]:
    # Exactly one parameter: durable-rules treats a two-parameter action as asynchronous.
    record_fired = _fired.append

    def record(c: Any) -> None:
        record_fired(condition_id)

    return record


def _ignore(c: Any) -> None:
    """The catch-all rule's action: nothing to record."""


def ruleset_definition(criteria: CriteriaSet, action: Callable[[str], Callable[[Any], None]]) -> dict[str, Any]:
    """The durable-rules definition of ``criteria``: the catch-all rule, then one rule per condition
    whose action is ``action(condition id)`` (an action takes exactly one parameter). The matcher
    registers this with its recording actions; ``make bench`` registers it on a host of its own to
    measure the engine alone on the same rules."""
    # The catch-all: its field is not "f_"-prefixed, so no fact can shadow it (see the module docstring).
    definition = {_CATCH_ALL: when_all(m.__getattr__(_LINE_FIELD) == _LINE_VALUE)(_ignore).define()}
    for i, cond in enumerate(criteria.conditions):
        expression = functools.reduce(operator.and_, [_expression(criteria, p) for p in cond.predicates])
        definition[f"c{i}_{cond.id}"] = when_all(expression)(action(cond.id)).define()
    return definition


def engine_fact(criteria: CriteriaSet, facts: Mapping[str, object]) -> dict[str, Any]:
    """The fact the matcher asserts for a line with these clinical facts, without its ``sid``: the
    usable facts as engine values under ``f_<name>``, and the field the catch-all rule matches."""
    fact: dict[str, Any] = {f"f_{name}": _engine_value(criteria.fact(name).type, value)
                            for name, value in usable_facts(criteria, facts).items()}
    fact[_LINE_FIELD] = _LINE_VALUE
    return fact


def _compile(host: _SynchronousHost, criteria: CriteriaSet) -> _Compiled:
    """Register ``criteria`` once (caller holds the lock)."""
    name = ruleset_name(criteria)
    known = _registered.get(name)
    if known is not None:
        if known.content_hash != criteria.content_hash:
            raise RulesEngineError(f"{name} is already compiled from different content (sha256 "
                                   f"{known.content_hash[:12]}, now {criteria.content_hash[:12]}); "
                                   "changed criteria need a new version")
        return known
    definition = ruleset_definition(criteria, _recorder)
    try:
        host.register_rulesets({name: definition})
    except Exception as exc:
        raise RulesEngineError(f"durable-rules refused ruleset {name}: {exc}") from exc
    compiled = _Compiled(name, criteria.content_hash,
                         tuple((f.name, f"f_{f.name}", _CONVERTERS[f.type]) for f in criteria.facts))
    _registered[name] = compiled
    logger.info("compiled criteria %s into a durable-rules ruleset of %d rules", name, len(definition) - 1)
    return compiled


def _get_host() -> _SynchronousHost:
    global _host
    if _host is None:
        _host = _SynchronousHost()
    return _host


class DurableRulesMatcher(ConditionMatcher):
    """:class:`ConditionMatcher` backed by durable-rules. Safe to share between threads.

    ``criteria`` given to the constructor are compiled at once, so that a ruleset the engine
    refuses fails at startup rather than at the first line; :meth:`add` compiles more later (hot
    reload), and any other set compiles on first use. Compiled rulesets belong to the process: every
    matcher sees them all."""

    def __init__(self, criteria: Iterable[CriteriaSet] = ()) -> None:
        self.add(criteria)

    def add(self, criteria: Iterable[CriteriaSet]) -> tuple[str, ...]:
        """Compile criteria versions into the running engine; returns their ruleset names
        (``id@version``), in order. A version already compiled from the same content is left as it
        is; one compiled from different content raises :class:`RulesEngineError`, and then nothing
        of this call is compiled. Lines being matched meanwhile are not disturbed."""
        wanted = list(criteria)
        with _LOCK:
            seen: dict[str, str] = {name: known.content_hash for name, known in _registered.items()}
            for c in wanted:
                name = ruleset_name(c)
                if seen.setdefault(name, c.content_hash) != c.content_hash:
                    raise RulesEngineError(f"{name} is already compiled (or added) from different content (sha256 "
                                           f"{seen[name][:12]}, now {c.content_hash[:12]}); "
                                           "changed criteria need a new version")
            host = _get_host()
            return tuple(_compile(host, c).name for c in wanted)

    def compile(self, criteria: CriteriaSet) -> str:
        """Register the ruleset of ``criteria`` (idempotent); returns its name."""
        with _LOCK:
            return _compile(_get_host(), criteria).name

    def matched(self, criteria: CriteriaSet, line: LineFacts) -> frozenset[str]:
        usable = usable_facts(criteria, line.facts)
        with _LOCK:
            host = _get_host()
            compiled = _registered.get(ruleset_name(criteria))
            if compiled is None or compiled.content_hash != criteria.content_hash:
                compiled = _compile(host, criteria)
            name = compiled.name
            fact: dict[str, Any] = {key: convert(usable[fact_name])
                                    for fact_name, key, convert in compiled.facts if fact_name in usable}
            sid = str(next(_sids))
            fact["sid"] = sid
            fact[_LINE_FIELD] = _LINE_VALUE
            _fired.clear()
            try:
                host.assert_fact(name, fact)
            except engine.MessageNotHandledException as exc:
                # Unreachable while the catch-all rule exists; deleting this session could crash
                # the process, so it is left behind (one of about 1,024) and the line fails.
                raise RulesEngineError(f"{name}: the catch-all rule did not match a line") from exc
            except Exception as exc:
                _discard(host, name, sid)
                raise RulesEngineError(f"durable-rules could not evaluate a line against {name}: {exc}") from exc
            finally:
                fired = frozenset(_fired)
                _fired.clear()
            host.delete_state(name, sid)
            return fired


def _discard(host: _SynchronousHost, name: str, sid: str) -> None:
    """Delete a session that a failed assert may or may not have created."""
    try:
        host.delete_state(name, sid)
    except Exception:  # noqa: BLE001 - the session was never created; the assert's error is what matters
        logger.debug("no session %s to delete in %s", sid, name)
