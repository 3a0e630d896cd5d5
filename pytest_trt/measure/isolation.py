"""Timing workers whose CUDA context has run nothing before them.

A GPU's speed on a configuration depends on what the process ran before it (on an H200, ResNet152 fp16
at batch 1 took 2.59 ms as the first model of its process and 2.95 ms after any other model had run;
``docs/measurements.md``).  A deployment runs one engine per process, so that is what a figure must stand
for.  :class:`ForkServer` is forked from the pytest process *before anything touches CUDA* (torch is
imported, no context exists); it forks one worker per engine on request, and the worker times that
engine's configurations (e.g. its batch sizes) in a context that has run nothing but that engine.

The protocol is a single pipe: the server blocks in ``waitpid`` while its worker owns the pipe, and
reports the worker's end (so a crashed worker is an error, never a hang).  Everything crossing the pipe
is pickled; the worker's code is whatever the server inherited at fork time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection, Pipe
from typing import Any

Handler = Callable[[Any], Any]


class WorkerError(RuntimeError):
    """A job failed in its worker (the message holds the worker's traceback) or the worker died."""


class ForkServer:
    """Forked at construction; call :meth:`open` for a worker, :meth:`close` at the end of the session."""

    def __init__(self, handler: Handler) -> None:
        self._conn, child = Pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the server: never returns into pytest
            self._conn.close()
            _serve(child, handler)
        child.close()
        self.workers_started = 0

    def open(self) -> Worker:
        """A new worker: its CUDA context starts empty."""
        self._conn.send(("open",))
        tag, pid = self._conn.recv()
        assert tag == "started"
        self.workers_started += 1
        return Worker(self._conn, pid)

    def close(self) -> None:
        with contextlib.suppress(OSError):  # the server may be gone already
            self._conn.send(("quit",))
        self._conn.close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


class Worker:
    def __init__(self, conn: Connection, pid: int) -> None:
        self._conn, self.pid, self.open = conn, pid, True

    def run(self, job: Any) -> Any:
        """Run ``job`` through the server's handler in this worker; raises WorkerError."""
        if not self.open:
            raise WorkerError("this timing worker has ended")
        self._conn.send(("job", job))
        tag, payload = self._conn.recv()
        if tag == "ok":
            return payload
        if tag == "exited":  # the worker died mid-job: the server says how
            self.open = False
            raise WorkerError(f"the timing worker (pid {self.pid}) ended without an answer: {payload}")
        raise WorkerError(payload)

    def close(self) -> None:
        if self.open:
            self._conn.send(("end",))
            tag, _ = self._conn.recv()  # the server's "exited" for this worker
            assert tag == "exited"
            self.open = False


def _serve(conn: Connection, handler: Handler) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the session's to handle; it closes us
    code = 0
    try:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break  # the session is gone
            if msg[0] == "quit":
                break
            pid = os.fork()
            if pid == 0:
                _work(conn, handler)
            conn.send(("started", pid))
            _, status = os.waitpid(pid, 0)
            conn.send(("exited", _describe(status)))
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _work(conn: Connection, handler: Handler) -> None:
    code = 0
    try:
        while True:
            msg = conn.recv()
            if msg[0] == "end":
                break
            try:
                conn.send(("ok", handler(msg[1])))
            except BaseException:
                conn.send(("error", traceback.format_exc()[-4000:]))
    except BaseException:
        code = 1
    finally:
        os._exit(code)  # no pytest teardown, no atexit handlers of the session in a worker


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return f"killed by signal {sig} ({signal.Signals(sig).name})"
    return f"exit code {os.WEXITSTATUS(status)}"
