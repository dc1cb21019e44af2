"""Password sync's directory mechanism (replication mode): NT hashes read from a source DC by
DRSUAPI GetNCChanges (replication.py), the target users they may go to (targets.py), and
their setting by SAMR over SMB (samr.py).

impacket (the `passwords` extra) is imported only inside the functions that talk to a DC, so
importing this package, or any module of it, costs nothing on an agent that never syncs
passwords. Import the modules themselves: `from ferry_agent.passwords import replication`.
"""

from .endpoint import DcEndpoint
from .errors import PasswordSyncError

__all__ = ["DcEndpoint", "PasswordSyncError"]
