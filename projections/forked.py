"""A rebuild shared among processes (catchup.rebuild with `processes` > 1, Postgres).

One process rebuilding every read model is bound by Python's one core at a time (adr/0021: the fold,
the decoding and the COPY formatting all hold the GIL), while the machine has more. The projections are
therefore shared among processes: this one and children forked from it, each making its own pass over
the log (the database serves the log twice; each process decodes only what its projections handle),
folding its share into tables built beside the live ones and switching its projections itself.
Projections are independent (each has its own tables and tracking row), so nothing else changes:
the same pass, the same switch under each projection's tracking lock.

Forked rather than started afresh: a child has the projections, their handlers and the decoder
already, where a new interpreter spent ~0.6 s of CPU importing them. A child uses none of its
parent's connections (an engine and a log reader of its own: `catchup._rebuild_child`), holds them
until it ends with `os._exit` (no finaliser of an inherited connection runs, which would end the
parent's session), and hands back the events folded, its failures and its timings through a pipe.
A child that dies fails its projections only; the parent drops the tables it left."""
from __future__ import annotations

import logging
import os
import pickle
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from projections.base import Projection

log = logging.getLogger(__name__)

#: Relative work of a projection's rebuild beyond reading the log (folding, rows to write, indexes), by
#: name: measured alone on a 102k-event log (bench/results/rebuild_throughput.md, rebuild seconds minus
#: the ~0.8 s every rebuild spent reading), except the catalogue's, set from rebuilds in two processes:
#: at 4.8 (alone) the catalogue's share took 6.0 s and the other 5.6 s; at 5.6 the memberships and
#: the small ones go to the other share, 5.67 -> 5.51 s (3 A/B pairs, each faster). The rest weigh
#: DEFAULT_WEIGHT.
WEIGHTS = {"catalogue": 5.6, "audit": 2.8, "changes": 2.4, "memberships": 0.5, "label_history": 0.3}
DEFAULT_WEIGHT = 0.1


class RebuildProcessFailed(Exception):
    """A projection's rebuild failed in a child process (the original exception's type and message),
    or the child ended without saying how its projections went."""


def weight(projection: Projection) -> float:
    return WEIGHTS.get(projection.name, DEFAULT_WEIGHT)


def share(projections: Sequence[Projection], processes: int) -> list[list[Projection]]:
    """The projections in at most `processes` groups of about the same weight (the heaviest first, each
    to the lightest group so far), each in the caller's order; the first group is the heaviest."""
    groups: list[list[Projection]] = [[] for _ in range(max(1, min(processes, len(projections))))]
    loads = [0.0] * len(groups)
    for p in sorted(projections, key=weight, reverse=True):
        i = loads.index(min(loads))
        groups[i].append(p)
        loads[i] += weight(p)
    order = {id(p): i for i, p in enumerate(projections)}
    return [sorted(g, key=lambda p: order[id(p)]) for g in groups if g]


@dataclass
class Result:
    rebuilt: dict[str, int] = field(default_factory=dict)
    failures: dict[str, BaseException] = field(default_factory=dict)
    timings: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class Child:
    pid: int
    fd: int
    projections: list[Projection]
    running: bool = True

    def wait(self) -> Result:
        """Its result, once it ended (every projection failed when it did not say)."""
        chunks = []
        try:
            while chunk := os.read(self.fd, 1 << 16):
                chunks.append(chunk)
        finally:
            os.close(self.fd)
            _, status = os.waitpid(self.pid, 0)
            self.running = False
        try:
            rebuilt, failures, timings = pickle.loads(b"".join(chunks))
        except Exception:  # noqa: BLE001 - it died before it could say
            why = RebuildProcessFailed(f"the rebuild process {self.pid} ended without a result "
                                       f"({_describe(status)})")
            return Result(failures={p.name: why for p in self.projections})
        return Result(rebuilt, {name: RebuildProcessFailed(f"{kind}: {message}")
                                for name, (kind, message) in failures.items()}, timings)

    def stop(self) -> None:
        """End it now (the caller failed): its open transactions roll back with its connections."""
        if not self.running:
            return
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.close(self.fd)
        except OSError:
            pass
        os.waitpid(self.pid, 0)
        self.running = False


def start(projections: list[Projection],
          run: Callable[[], tuple[dict[str, int], dict[str, BaseException], dict[str, dict[str, float]]]]) -> Child:
    """Fork a child that calls `run` (which returns the events folded, the failures and the timings of
    `projections`) and ends."""
    read_end, write_end = os.pipe()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()  # else what the parent buffered is written twice
        except Exception:  # noqa: BLE001 - a closed or odd stream
            pass
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        raise
    if pid == 0:  # the child: never returns
        status = 1
        try:
            os.close(read_end)
            rebuilt, failures, timings = run()
            payload = pickle.dumps((rebuilt, {name: (type(exc).__name__, str(exc)) for name, exc in failures.items()},
                                    timings))
            view = memoryview(payload)
            while view:
                view = view[os.write(write_end, view):]
            status = 0
        except BaseException:  # noqa: BLE001 - said on stderr; the parent fails its projections
            try:
                log.exception("a rebuild process failed")
            except BaseException:  # noqa: BLE001
                pass
        finally:
            os._exit(status)
    os.close(write_end)
    return Child(pid, read_end, list(projections))


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def default_processes() -> int:
    """Processes a rebuild of several projections uses by default (the CLI): two where there are
    two cores or more (the measured gain, bench/results/rebuild_throughput.md), else one."""
    return 2 if (os.cpu_count() or 1) >= 2 and hasattr(os, "fork") else 1
