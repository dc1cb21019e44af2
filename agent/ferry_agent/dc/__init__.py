"""Work the agent does on the domain controller it runs on, through the DC's own database
rather than LDAP: what AD allows no network client (today: sIDHistory on Samba).

The Windows side of the same work is a contract (windows.py): the DsAddSidHistory call and
the prerequisites checked before it.
"""

from .local_samba import LocalDcError, LocalSambaDc
from .sid_history import (
    SidHistoryRefused,
    SidHistoryRequest,
    SidHistoryResult,
    add_sid_histories,
    add_sid_history,
)

__all__ = ["LocalDcError", "LocalSambaDc", "SidHistoryRefused", "SidHistoryRequest",
           "SidHistoryResult", "add_sid_histories", "add_sid_history"]
