"""Job credentials on a real gateway: each is bound to its run's environments, so a holder
reaches those environments' agents only, reads results of its own work only, and a forged,
expired or operator credential submits nothing."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tests.integration.gateway.harness import CLI_SECONDS, RunningGateway

from ferry.gateway.job_auth import ROLE_OPERATOR, load_signing_key, mint
from ferry_agent.transport import GatewayRefused


def refused(call: object) -> tuple[int, str]:
    with pytest.raises(GatewayRefused) as caught:
        call()  # type: ignore[operator]
    return caught.value.status, caught.value.message


def test_a_credential_reaches_only_the_environments_it_is_bound_to(
        gateway: RunningGateway, environment: str, tmp_path: Path) -> None:
    other = environment + "-other"
    gateway.fake_agent(environment, "dc-mine", tmp_path)
    gateway.fake_agent(other, "dc-theirs", tmp_path)
    mine = gateway.job(gateway.credential(environment, subject="run-a"))
    status, body = mine.submit(environment, "exists", {"dn": "CN=x"})
    assert status == 200 and body is not None
    assert refused(lambda: mine.submit(other, "write", {"writes": []})) == (
        403, f"this credential (run-a) is not bound to environment {other}")
    # The other environment's agent was never offered anything.
    theirs = gateway.job(gateway.credential(other, subject="run-b"))
    work_b = theirs.submit(other, "exists", {"dn": "CN=y"})[1]["workId"]  # type: ignore[index]
    assert refused(lambda: mine.results(work_b)) == (
        403, f"this credential (run-a) is not bound to environment {other}")
    log = gateway.log_text()
    assert '"who": "job:run-a"' in log and '"status": 403' in log


def test_a_run_cannot_read_the_results_of_another_runs_work(
        gateway: RunningGateway, environment: str, tmp_path: Path) -> None:
    gateway.fake_agent(environment, "dc-01", tmp_path)
    first = gateway.job(gateway.credential(environment, subject="run-1"))
    second = gateway.job(gateway.credential(environment, subject="run-2"))
    work = first.submit(environment, "read_full", {})[1]["workId"]  # type: ignore[index]
    assert refused(lambda: second.results(work)) == (
        403, "this work was submitted by another run than run-2")
    status, body = first.results(work)
    assert status == 200 and body is not None and body["state"] == "queued"


def test_forged_expired_and_operator_credentials_submit_nothing(
        gateway: RunningGateway, environment: str, tmp_path: Path) -> None:
    gateway.fake_agent(environment, "dc-01", tmp_path)
    stranger = ec.generate_private_key(ec.SECP256R1())
    forged = mint(stranger, "run-x", [environment], timedelta(hours=1))
    payload = gateway.credential(environment).split(".")
    widened = gateway.credential(environment, "everything-else").split(".")
    spliced = ".".join([payload[0], widened[1], payload[2]])  # claims of one, signature of another
    stale = mint(load_signing_key(gateway.signing_key), "run-old", [environment],
                 timedelta(minutes=5), now=datetime.now(UTC) - timedelta(hours=1))
    for token in (forged, spliced, stale):
        assert refused(lambda t=token: gateway.job(t).submit(
            environment, "exists", {"dn": "CN=x"})) == (401, "unauthorized")
    operator = gateway.credential(environment, subject="operator", role=ROLE_OPERATOR)
    assert refused(lambda: gateway.job(operator).submit(environment, "exists", {"dn": "x"})) \
        == (403, "a credential of role operator may not use /v1/work")
    status, body = gateway.client().get(f"/v1/environments/{environment}/agents",
                                        headers={"Authorization": f"Bearer {operator}"})
    assert status == 200 and body is not None
    assert [a["name"] for a in body["agents"]] == ["dc-01"]
    log = gateway.log_text()
    assert "token invalid" in log and "token expired" in log
    for token in (forged, spliced, stale, operator):
        assert token not in log


def test_the_cli_signs_a_credential_for_ferry_run(gateway: RunningGateway, environment: str,
                                                  tmp_path: Path) -> None:
    made = subprocess.run(
        [sys.executable, "-m", "ferry", "job-credential", "create", "--signing-key",
         str(gateway.signing_key), "-e", environment, "--ttl", "30m", "--subject", "ci"],
        capture_output=True, text=True, timeout=CLI_SECONDS, check=False)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    gateway.fake_agent(environment, "dc-01", tmp_path)
    status, _ = gateway.job(token).submit(environment, "exists", {"dn": "CN=x"})
    assert status == 200
    assert refused(lambda: gateway.job(token).submit("elsewhere", "exists", {"dn": "x"}))[0] \
        == 403
    public = serialization.load_pem_public_key(
        gateway.signing_key.with_suffix(".pub").read_bytes())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    too_long = subprocess.run(
        [sys.executable, "-m", "ferry", "job-credential", "create", "--signing-key",
         str(gateway.signing_key), "-e", environment, "--ttl", "8d"],
        capture_output=True, text=True, timeout=CLI_SECONDS, check=False)
    assert too_long.returncode == 2 and "at most 7 days" in too_long.stderr
