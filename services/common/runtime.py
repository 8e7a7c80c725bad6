"""Running one service process: gRPC server, consumer loop and outbox relay on
their own threads, stopped gracefully on SIGTERM/SIGINT.

Shutdown order: health → NOT_SERVING and the server refuses new calls while
in-flight ones finish; the consumer finishes its batch and commits offsets;
the relay publishes what has committed; then connections close.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from sqlalchemy import Engine

from services.common.consumer import ConsumerLoop
from services.common.grpc_server import RunningServer
from services.common.outbox import OutboxRelay

logger = logging.getLogger(__name__)


@dataclass
class ServiceRuntime:
    name: str
    server: RunningServer
    engine: Engine
    relay: OutboxRelay | None = None
    consumer: ConsumerLoop | None = None
    producer: Any = None
    grace_s: float = 10.0
    stop_event: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    # Periodic work of a service (name, seconds between runs, function); runs until stop.
    periodic: list[tuple[str, float, Callable[[], object]]] = field(default_factory=list)

    def start(self) -> None:
        self._relay_stop = threading.Event()
        for name, every_s, work in self.periodic:
            self._threads.append(self._spawn(name, self._every(every_s, work, name)))
        if self.relay is not None:
            self._threads.append(self._spawn("outbox-relay", lambda: self.relay.run(self._relay_stop)))  # type: ignore[union-attr]
        if self.consumer is not None:
            self._threads.append(self._spawn("consumer", lambda: self.consumer.run(self.stop_event)))  # type: ignore[union-attr]

    def _every(self, every_s: float, work: Callable[[], object], name: str) -> Callable[[], None]:
        def loop() -> None:
            while not self.stop_event.wait(every_s):
                try:
                    work()
                except Exception:
                    # A periodic pass that fails (database briefly away) is retried next time.
                    logger.exception("%s pass failed; retrying in %.0f s", name, every_s)
        return loop

    def _spawn(self, name: str, target: Callable[[], None]) -> threading.Thread:
        def guarded() -> None:
            try:
                target()
            except Exception:
                logger.exception("%s thread died; stopping the service", name)
                self.stop_event.set()

        thread = threading.Thread(target=guarded, name=f"{self.name}-{name}", daemon=True)
        thread.start()
        return thread

    @property
    def port(self) -> int:
        return self.server.port

    def stop(self) -> None:
        logger.info("%s stopping", self.name)
        self.stop_event.set()
        self.server.stop(self.grace_s)
        for thread in self._threads:
            if thread.name.endswith("consumer"):
                thread.join(timeout=30)
        if self.consumer is not None:
            self.consumer.close()
        self._relay_stop.set()
        if self.relay is not None:
            self.relay.wake()
        for thread in self._threads:
            thread.join(timeout=30)
        for hook in self.on_stop:
            hook()
        if self.producer is not None:
            self.producer.flush(timeout=10)
            self.producer.close(timeout=10)
        self.engine.dispose()
        logger.info("%s stopped", self.name)

    def serve_forever(self) -> None:
        """Block until SIGTERM/SIGINT (or a worker thread dies), then stop gracefully."""

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            logger.info("received signal %d", signum)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        while not self.stop_event.wait(1.0):
            pass
        self.stop()
