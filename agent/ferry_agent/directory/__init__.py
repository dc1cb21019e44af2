"""LDAP operations on Active Directory, used by the sync engine directly and by agents.

Plain data in and out (str, dicts, dataclasses): nothing here knows the engine's types.
Distinguished names are ferry_agent.dn's.
"""

from .connection import DirectoryEndpoint, connect
from .errors import DirectoryConnectionError, DirectoryError, WatermarkError
from .guid import guid_dn, guid_filter, guid_from_bytes, guid_to_bytes
from .password import generate_password
from .read import (
    OBJECT_TYPES,
    AdWatermark,
    Changes,
    DirSyncUnavailable,
    Entry,
    ReadScope,
    initial_watermark,
    naming_context,
    read_by_guids,
    read_changes,
    read_full,
    read_members,
    resolve_dns,
)
from .write import (
    add_members,
    create,
    delete,
    ensure_ou,
    group_type,
    move,
    parse_group_type,
    remove_members,
    set_enabled,
    update,
)

__all__ = [
    "OBJECT_TYPES",
    "AdWatermark",
    "Changes",
    "DirSyncUnavailable",
    "DirectoryConnectionError",
    "DirectoryEndpoint",
    "DirectoryError",
    "Entry",
    "ReadScope",
    "WatermarkError",
    "add_members",
    "connect",
    "create",
    "delete",
    "ensure_ou",
    "generate_password",
    "group_type",
    "guid_dn",
    "guid_filter",
    "guid_from_bytes",
    "guid_to_bytes",
    "initial_watermark",
    "move",
    "naming_context",
    "parse_group_type",
    "read_by_guids",
    "read_changes",
    "read_full",
    "read_members",
    "remove_members",
    "resolve_dns",
    "set_enabled",
    "update",
]
