"""A Secret a run needs that cannot be read is a configuration error: exit 2 with one line per
secret naming object, field, Secret and key, before any connection, with no run recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.bad_input import (
    Listener,
    example_manifests,
    example_secrets,
    ferry,
    files_under,
    one_line_each,
)

from ferry.state.store import StateStore


def _runs(state: Path) -> list[str]:
    if not state.exists():
        return []
    with StateStore(str(state), read_only=True) as store:
        return [r.id for r in store.runs.recent()]


@pytest.mark.parametrize("command", ["run", "plan"])
def test_a_missing_secret_folder_is_named_and_nothing_is_touched(
        tmp_path: Path, listener: Listener, command: str) -> None:
    manifests = example_manifests(tmp_path / "manifests", listener.port)
    secrets = example_secrets(tmp_path / "secrets")
    for key in ("password", "ca.pem"):
        (secrets / "tgt-ad" / key).unlink()
    (secrets / "tgt-ad").rmdir()
    state = tmp_path / "state.sqlite"
    done = ferry(command, "-f", str(manifests), "--state", str(state),
                 "--secrets-dir", str(secrets), cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert one_line_each(done.stderr) == [
        f"Environment/tgt: spec.activeDirectory.credentials.password: Secret tgt-ad not found"
        f" (no folder {secrets}/tgt-ad; set --secrets-dir or FERRY_SECRETS_DIR)",
        f"Environment/tgt: spec.activeDirectory.tls.ca: Secret tgt-ad not found"
        f" (no folder {secrets}/tgt-ad; set --secrets-dir or FERRY_SECRETS_DIR)",
    ]
    assert done.stdout == ""
    assert listener.connections() == 0, "a directory was reached before the secrets were read"
    assert not state.exists(), "the state store was opened before the secrets were read"
    assert not (tmp_path / ".ferry").exists()  # no plan file either


def test_a_missing_key_is_named_with_its_secret(tmp_path: Path, listener: Listener) -> None:
    manifests = example_manifests(tmp_path / "manifests", listener.port)
    secrets = example_secrets(tmp_path / "secrets")
    (secrets / "src-ad" / "ca.pem").unlink()
    state = tmp_path / "state.sqlite"
    done = ferry("run", "-f", str(manifests), "--state", str(state),
                 "--secrets-dir", str(secrets), cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert one_line_each(done.stderr) == [
        "Environment/src: spec.activeDirectory.tls.ca: Secret src-ad has no key ca.pem"
        f" (no file {secrets}/src-ad/ca.pem)"]
    assert listener.connections() == 0
    assert not state.exists()


def test_a_missing_initial_password_secret_stops_a_run_before_it_reads(
        tmp_path: Path, listener: Listener) -> None:
    manifests = example_manifests(tmp_path / "manifests", listener.port)
    template = manifests / "template.yaml"
    template.write_text(template.read_text().replace(
        "    mustChangeAtNextLogon: true",
        "    value: {secretKeyRef: {name: initial, key: password}}\n"
        "    mustChangeAtNextLogon: true"))
    secrets = example_secrets(tmp_path / "secrets")
    before = files_under(tmp_path)
    done = ferry("run", "-f", str(manifests), "--state", str(tmp_path / "state.sqlite"),
                 "--secrets-dir", str(secrets), cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert one_line_each(done.stderr) == [
        f"Template/src-to-tgt: spec.password.value: Secret initial not found (no folder"
        f" {secrets}/initial; set --secrets-dir or FERRY_SECRETS_DIR)"]
    assert listener.connections() == 0
    assert _runs(tmp_path / "state.sqlite") == []
    assert ".ferry" not in {p.split("/")[0] for p in files_under(tmp_path)} - set(before)
