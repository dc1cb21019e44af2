"""The operator for the tests: in the test's process, started the way `ferry operator` starts
it (its settings passed in, kopf's memo, signed in with a kubeconfig), or as a real `ferry
operator` process for the tests that kill or restart it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

from ferry.settings import OperatorSettings

STOP_SECONDS = 60.0  # a graceful stop waits for kopf's watches and the cleanup handler


@contextmanager
def operator_process(namespace: str, env: dict[str, str],
                     log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`ferry operator --namespace NAMESPACE` as a process with `env`, its output appended to
    `log`; stopped with SIGTERM (then SIGKILL) when the block ends, unless it ended first."""
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ferry", "operator", "--namespace", namespace],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@contextmanager
def running_operator(settings: OperatorSettings, kubeconfig: Path) -> Iterator[None]:
    """Run the operator in a thread while the block runs; then stop it, and fail with what
    ended it if it was not the stop."""
    from ferry.controller import handlers

    stop = threading.Event()
    ended: list[BaseException] = []

    def operate() -> None:
        try:
            handlers.run(settings, stop_flag=stop)
        except BaseException as exc:  # raised again in the test's thread
            ended.append(exc)

    # kopf's login and Ferry's API client read KUBECONFIG when the operator starts.
    with mock.patch.dict(os.environ, {"KUBECONFIG": str(kubeconfig)}):
        thread = threading.Thread(target=operate, name="operator", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(STOP_SECONDS)
            assert not thread.is_alive(), f"the operator did not stop in {STOP_SECONDS:.0f} s"
            if ended:
                raise ended[0]
