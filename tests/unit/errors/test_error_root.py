"""Every error Ferry raises derives from one root that carries the exit code a command ends with."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import ferry
import ferry_agent
from ferry.api.errors import ManifestError
from ferry.api.safe_yaml import ManifestTooLarge
from ferry.controller.requests import RunRequestError
from ferry.controller.sync_job import SyncJobError
from ferry.engine.expressions import ExpressionError
from ferry.errors import ExitCode, FerryError
from ferry.gateway.ca import CAError
from ferry.gateway.job_auth import JobAuthError
from ferry.gateway.server import GatewayConfigError
from ferry.gateway.tls import TLSConfigError
from ferry.lab.samba import LabError
from ferry.secrets import SecretsMissing
from ferry.sync.guests import GuestsError
from ferry_agent.errors import FerryAgentError

# Programs Samba's own Python runs on a DC (`python3 -I FILE`): they import nothing of Ferry,
# so their errors cannot derive from its roots; they reach Ferry only as answers on stdout.
SAMBA_PROGRAMS = {"ferry.lab.offline", "ferry_agent.dc.samba_backend",
                  "ferry_agent.device.hive_backend"}


def _exceptions(package: ModuleType) -> list[type[BaseException]]:
    """The exception classes defined in every module of the package."""
    found = []
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if info.name.endswith(".__main__") or info.name in SAMBA_PROGRAMS:
            continue  # running __main__ would run the command
        module = importlib.import_module(info.name)
        found += [value for value in vars(module).values()
                  if inspect.isclass(value) and issubclass(value, BaseException)
                  and value.__module__ == module.__name__]
    return found


def test_every_ferry_error_derives_from_ferry_error() -> None:
    outside = [f"{c.__module__}.{c.__name__}" for c in _exceptions(ferry)
               if not issubclass(c, FerryError)]
    assert outside == []


def test_every_agent_error_derives_from_the_agents_own_root() -> None:
    outside = [f"{c.__module__}.{c.__name__}" for c in _exceptions(ferry_agent)
               if not issubclass(c, FerryAgentError) or issubclass(c, FerryError)]
    assert outside == []


def test_one_name_means_one_error() -> None:
    classes = _exceptions(ferry) + _exceptions(ferry_agent)
    names = [c.__name__ for c in classes]
    assert sorted({n for n in names if names.count(n) > 1}) == []


# The exit code each error ends a command with, as `ferry run --help` documents them.
@pytest.mark.parametrize(("error", "code"), [
    (ManifestError, ExitCode.INVALID_INPUT),
    (ManifestTooLarge, ExitCode.INVALID_INPUT),
    (ExpressionError, ExitCode.INVALID_INPUT),
    (SecretsMissing, ExitCode.INVALID_INPUT),
    (GuestsError, ExitCode.INVALID_INPUT),
    (SyncJobError, ExitCode.INVALID_INPUT),
    (GatewayConfigError, ExitCode.INVALID_INPUT),
    (CAError, ExitCode.INVALID_INPUT),
    (TLSConfigError, ExitCode.INVALID_INPUT),
    (JobAuthError, ExitCode.INVALID_INPUT),
    (LabError, ExitCode.FAILED),
    (RunRequestError, ExitCode.FAILED),
])
def test_each_error_carries_its_documented_exit_code(error: type[FerryError],
                                                      code: ExitCode) -> None:
    assert error.exit_code is code


def test_the_cause_is_the_error_it_was_raised_from() -> None:
    original = OSError("disk full")
    with pytest.raises(LabError) as caught:
        raise LabError("the lab could not start") from original
    assert caught.value.cause is original
