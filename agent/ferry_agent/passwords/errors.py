"""The error of password sync's directory mechanism (replication reads, SAMR sets).

Messages name the DC, the account (DN, sAMAccountName or SID) and what to fix; they never
carry a hash, a password or anything derived from one.
"""

from __future__ import annotations

from ..errors import FerryAgentError


class PasswordSyncError(FerryAgentError):
    """Reading or setting password hashes on a DC failed; the message says why and what to do."""
