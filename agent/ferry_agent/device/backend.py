"""What a device backend does: the same actions on Linux (for real) and Windows (by contract)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ferry_agent.device.outcome import ActionOutcome, ReaclMode, ReaclScope, SidTable


class DeviceBackend(Protocol):
    """One workstation's actions; each is safe to run again after a crash part-way."""

    def reacl(self, table: SidTable, source_domain: str, mode: ReaclMode,
              scopes: Sequence[ReaclScope]) -> ActionOutcome:
        """Translate source SIDs to target SIDs over the device's configured scopes."""

    def undo_reacl(self, table: SidTable, source_domain: str, mode: ReaclMode,
                   scopes: Sequence[ReaclScope]) -> ActionOutcome:
        """Undo a ReACL for a rollback (a replace translated back; add: nothing to undo)."""

    def cache_credentials(self, users: Sequence[str], timeout_seconds: float) -> ActionOutcome:
        """Make target logons cacheable and wait until `users` logged on once."""

    def join(self, domain: str, domain_controller: str, computer_name: str,
             one_time_password: str) -> ActionOutcome:
        """Leave the current domain (its state backed up for rollback) and join `domain`
        with a pre-staged account's one-time password."""

    def offline_join(self, blob: bytes) -> ActionOutcome:
        """Apply an offline domain join blob (djoin format) with no network needed."""

    def entra_join(self, package: bytes) -> ActionOutcome:
        """Join Entra ID with a provisioning package (Windows only)."""

    def rejoin_source(self, one_time_password: str = "",
                      domain_controller: str = "") -> ActionOutcome:
        """Rollback: join the source again: from the membership join backed up (Linux), or
        with a one-time password staged on the kept source account (Windows)."""

    def reboot(self, delay_seconds: int, notice: str) -> ActionOutcome:
        """Tell logged-on users, wait `delay_seconds`, reboot."""

    def resume(self) -> ActionOutcome | None:
        """Finish what an action left for the first start with network (Linux: an offline
        join's keytab); None when nothing is left. Called each turn the gateway answers."""

    def facts(self) -> dict[str, str]:
        """What the device reports with each runbook poll (domain, computer name, os)."""
