"""Work the agent does on the domain controller it runs on, through the DC's own database
or programs rather than LDAP: what AD allows no network client (sIDHistory on Samba), and
password changes with their cleartext as they happen (Samba: syncpasswords and GPG).

The Windows side of the same work is a contract: the DsAddSidHistory call and the
prerequisites checked before it (windows.py), and the password filter DLL's messages
(password_filter.py).
"""

from .local_samba import LocalDcError, LocalSambaDc
from .password_changes import PasswordChange, PasswordWatcher
from .samba_gpg import PasswordChangesError
from .sid_history import (
    SidHistoryRefused,
    SidHistoryRequest,
    SidHistoryResult,
    add_sid_histories,
    add_sid_history,
)

__all__ = ["LocalDcError", "LocalSambaDc", "PasswordChange", "PasswordChangesError",
           "PasswordWatcher", "SidHistoryRefused", "SidHistoryRequest", "SidHistoryResult",
           "add_sid_histories", "add_sid_history"]
