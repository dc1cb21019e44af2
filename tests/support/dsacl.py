"""Rights on a lab DC granted the way its administrator would: `samba-tool dsacl set` on the
DC itself."""

from __future__ import annotations

import shutil
import subprocess

from ferry.lab import LabDomain


def dsacl_set(domain: LabDomain, object_dn: str, sddl: str) -> None:
    """Add the ACEs in `sddl` to the object's security descriptor."""
    samba_tool = shutil.which("samba-tool")
    assert samba_tool, "samba-tool is not installed"
    subprocess.run(
        [samba_tool, "dsacl", "set", "-s", str(domain.smb_conf),
         "-H", str(domain.folder / "private" / "sam.ldb"), f"--objectdn={object_dn}",
         f"--sddl={sddl}"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
