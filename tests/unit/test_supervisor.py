"""The supervisor's restart backoff: a service that crashes a few times in a row is back within a few seconds once
its cause is gone, and one that stayed up a while starts again from the shortest wait. Driven by a fake clock and
fake children, so nothing sleeps and no process starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from shoal.runner.suite import SuiteConfig
from shoal.runner.supervisor import Backoff, Child, Supervisor

TICK = 0.25  # how far the fake clock moves between two watches; exact in binary, so waits are measured exactly


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Flag(Child):
    """A child whose process is a flag: it dies when the test says, and starts when the supervisor says."""

    def __init__(self, name: str) -> None:
        super().__init__(name, [], {}, Path("unused.log"))
        self.up = False

    def start(self, now: float) -> None:
        self.up = True
        self.started_at = now

    def alive(self) -> bool:
        return self.up


def _suite(tmp_path: Path, max_backoff: float = 3.0) -> tuple[Supervisor, Flag, Clock]:
    clock = Clock()
    config = SuiteConfig.with_ports(str(tmp_path), restart_max_backoff_seconds=max_backoff)
    supervisor = Supervisor(config, clock=clock)
    child = Flag("ingest")
    supervisor.children = [child]
    child.start(clock())
    return supervisor, child, clock


def _downtime(supervisor: Supervisor, child: Flag, clock: Clock, uptime: float) -> float:
    """Let the child run `uptime` seconds, kill it, and watch until the supervisor starts it again: how long it was
    down."""
    clock.now += uptime
    child.up = False
    died = clock.now
    for _ in range(10_000):
        supervisor.watch_once()
        if child.up:
            return child.started_at - died
        clock.now += TICK
    pytest.fail(f"{child.name} was never started again")


def test_waits_double_then_stay_at_a_few_seconds() -> None:
    backoff = Backoff()
    assert [backoff.delay(n) for n in range(8)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0]
    # A service crashing for hours keeps the same short wait (the doubling must not overflow).
    assert backoff.delay(10_000) == 3.0
    assert Backoff(max_seconds=2.0).delay(5) == 2.0


def test_crashes_in_a_row_are_counted_until_the_process_stays_up() -> None:
    backoff = Backoff(reset_after_seconds=30.0)
    assert backoff.after_crash(0, uptime=0.1) == (0.5, 1)
    assert backoff.after_crash(1, uptime=0.1) == (1.0, 2)
    assert backoff.after_crash(3, uptime=29.9) == (3.0, 4)
    assert backoff.after_crash(3, uptime=30.0) == (0.5, 1)


def test_a_service_crashing_quickly_is_down_a_few_seconds_at_most(tmp_path: Path) -> None:
    supervisor, child, clock = _suite(tmp_path)
    downtimes = [_downtime(supervisor, child, clock, uptime=TICK) for _ in range(7)]
    assert downtimes == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0]
    # Healthy for a while: the next crash starts again from the shortest wait.
    assert _downtime(supervisor, child, clock, uptime=Backoff().reset_after_seconds) == 0.5
    assert _downtime(supervisor, child, clock, uptime=TICK) == 1.0


def test_the_cap_comes_from_the_suite_config(tmp_path: Path) -> None:
    supervisor, child, clock = _suite(tmp_path, max_backoff=1.5)
    assert [_downtime(supervisor, child, clock, uptime=TICK) for _ in range(4)] == [0.5, 1.0, 1.5, 1.5]


def test_nothing_restarts_while_stopping(tmp_path: Path) -> None:
    supervisor, child, clock = _suite(tmp_path)
    supervisor.stopping = True
    child.up = False
    for _ in range(100):
        supervisor.watch_once()
        clock.now += TICK
    assert not child.up
