"""Samba's security.NTACL extended attribute (xattr.idl `xattr_NTACL`, versions 1 to 4): the
Windows security descriptor vfs_acl_xattr keeps for each file, inside an NDR envelope.

The envelope is kept as found; only the descriptor at its end is rewritten. Its offsets count
from the blob's start (NDR's relative base), not the descriptor's.

The v3/v4 hashes are left as they are, on purpose. smbd compares them with a hash of the
*file system's* ACL (the POSIX ACL blob, v4, or the descriptor mapped from it, v3:
vfs_acl_common.c validate_nt_acl_blob), so they say "the POSIX ACL did not change under
us". A ReACL changes the NT ACL only; hashing the new descriptor into them (as the research
recipe did) would make a share without `acl_xattr:ignore system acls` drop the translated
ACL and show the POSIX mapping instead. With `ignore system acls = yes` smbd checks no hash.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .descriptor import DescriptorError, SecurityDescriptor, build_descriptor, parse_descriptor

XATTR_NAME = "security.NTACL"
_POINTER = 8                      # version (u16), union switch (u16), referent id (u32)
_HASH_V2 = 4 + 16                 # sd pointer, MD4-era 16-byte hash
_HASH_V3 = 4 + 2 + 64             # sd pointer, hash_type, 64-byte hash
_V4_TAIL = 8 + 64                 # NTTIME, sys_acl_hash[64] after the description


class NtAclError(DescriptorError):
    """A security.NTACL value this codec cannot read."""


@dataclass(frozen=True)
class NtAcl:
    """One security.NTACL value: its version, the envelope up to the descriptor, and the
    descriptor."""

    version: int
    envelope: bytes
    descriptor: SecurityDescriptor

    def to_bytes(self) -> bytes:
        return self.envelope + build_descriptor(self.descriptor, base=len(self.envelope))

    def with_descriptor(self, descriptor: SecurityDescriptor) -> NtAcl:
        return NtAcl(self.version, self.envelope, descriptor)


def parse_ntacl(blob: bytes) -> NtAcl:
    """An xattr value to NtAcl; one that is not security.NTACL of versions 1-4 is an
    NtAclError saying what is wrong."""
    offset = descriptor_offset(blob)
    try:
        descriptor = parse_descriptor(blob, offset, base=0)
    except DescriptorError as exc:
        raise NtAclError(f"security.NTACL v{blob[0]}: {exc}") from None
    return NtAcl(blob[0], bytes(blob[:offset]), descriptor)


def descriptor_offset(blob: bytes) -> int:
    """Where the descriptor starts in an NTACL blob (NDR: aligned to 4)."""
    if len(blob) < _POINTER:
        raise NtAclError(f"security.NTACL is {len(blob)} bytes, too short for its header")
    version, switch = struct.unpack_from("<HH", blob, 0)
    if version != switch or version not in (1, 2, 3, 4):
        raise NtAclError(f"security.NTACL version {version} (switch {switch}): only versions"
                         " 1 to 4 exist")
    if version == 1:
        offset = _POINTER
    elif version == 2:
        offset = _POINTER + _HASH_V2
    elif version == 3:
        offset = _POINTER + _HASH_V3
    else:
        start = _POINTER + _HASH_V3
        end = blob.find(b"\0", start)   # description: NUL-terminated UTF-8 ("posix_acl")
        if end < 0:
            raise NtAclError("security.NTACL v4: its description has no end")
        offset = _align4(end + 1) + _V4_TAIL
    offset = _align4(offset)
    if offset >= len(blob):
        raise NtAclError(f"security.NTACL v{version} ends ({len(blob)} bytes) before its"
                         " security descriptor")
    return offset


def _align4(offset: int) -> int:
    return offset + (-offset % 4)
