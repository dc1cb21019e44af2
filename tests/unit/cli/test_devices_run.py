"""`ferry devices run` refuses manifests it cannot drive, naming the object, field and fix,
before the state store is opened."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def devices_run(tmp_path: Path, *paths: Path) -> subprocess.CompletedProcess[str]:
    args = [a for p in paths for a in ("-f", str(p))]
    return subprocess.run([sys.executable, "-m", "ferry", "devices", "run", *args, "--once",
                           "--state", str(tmp_path / "state.sqlite")], capture_output=True,
                          text=True, timeout=120, check=False)


def test_manifests_without_a_device_migration_are_refused(tmp_path: Path) -> None:
    done = devices_run(tmp_path, EXAMPLES / "ad-to-ad")
    assert done.returncode == 2, done.stderr
    assert "no DeviceMigration in the manifests" in done.stderr
    assert not (tmp_path / "state.sqlite").exists()


def test_a_join_into_a_directly_reached_target_is_refused_naming_the_fix(tmp_path: Path
                                                                         ) -> None:
    done = devices_run(tmp_path, EXAMPLES / "ad-to-ad", EXAMPLES / "device-migration")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "DeviceMigration/workstations: spec.target: Environment tgt has connection" \
        " direct" in done.stderr
    assert "(connection: agent)" in done.stderr
    assert not (tmp_path / "state.sqlite").exists()
