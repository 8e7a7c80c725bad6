"""Hand-written in-memory implementations of the services' ports (``service_layer/ports.py``),
for unit tests. They subclass the ports, and the contract suites in ``tests/contract/`` run the
same tests against them and against SQLite and PostgreSQL, so that a fake cannot drift."""
