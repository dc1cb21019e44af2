"""Device ReACL against real Samba: NT ACLs smbd wrote, translated in place, checked by what
smbd shows over SMB (smbcacls --numeric); hives checked by hivex and libregf; local groups
of a member workstation's own SAM through `net groupmap`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from tests.integration.device.sids import SRC, TABLE, TGT, UNMATCHED
from tests.support.polling import eventually

from ferry.lab.fileserver import FileServer, seed_tree, smbcacls, template_acls
from ferry_agent.device.descriptor import SidMap, build_descriptor, parse_descriptor
from ferry_agent.device.files import reacl_files
from ferry_agent.device.ntacl import XATTR_NAME, parse_ntacl
from ferry_agent.device.outcome import ReaclMode

ROOT = Path(__file__).resolve().parents[3]


def seeded(server: FileServer, folders: int = 3, files: int = 4) -> list[Path]:
    return seed_tree(server, f"t-{uuid.uuid4().hex[:8]}", template_acls(SRC), folders, files)


def shown(server: FileServer, path: Path) -> list[str]:
    """smbd's view of one object's ACL: owner, group and ACE lines."""
    lines = smbcacls(server, path.relative_to(server.share).as_posix()).splitlines()
    return [line for line in lines if line.startswith(("OWNER:", "GROUP:", "ACL:"))]


def xattrs(paths: list[Path]) -> list[bytes]:
    return [os.getxattr(p, XATTR_NAME) for p in paths]


def test_smbd_written_acls_build_back_byte_identical(fileserver: FileServer) -> None:
    for path, blob in zip(paths := seeded(fileserver, 1, 2), xattrs(paths), strict=True):
        ntacl = parse_ntacl(blob)
        assert ntacl.to_bytes() == blob, path
        standalone = build_descriptor(ntacl.descriptor)
        assert build_descriptor(parse_descriptor(standalone)) == standalone


def test_replace_shows_target_sids_over_smb_and_a_repeat_changes_nothing(
        fileserver: FileServer) -> None:
    paths = seeded(fileserver)
    before = shown(fileserver, paths[-1])
    figures = reacl_files([paths[0]], SidMap(TABLE), ReaclMode.REPLACE, SRC)
    assert (figures.scanned, figures.changed, figures.error_count) == (len(paths), len(paths), 0)
    assert figures.unmatched == UNMATCHED
    after = shown(fileserver, paths[-1])
    assert after == [line.replace(f"{SRC}-1102:", f"{TGT}-2201:")
                     .replace(f"{SRC}-1104:", f"{TGT}-3104:")
                     .replace(f"OWNER:{SRC}-1102", f"OWNER:{TGT}-2201")
                     .replace(f"GROUP:{SRC}-513", f"GROUP:{TGT}-513") for line in before]
    assert any(line.startswith(f"ACL:{SRC}-1109:") for line in after)  # no match: left
    folder = shown(fileserver, paths[1])
    assert f"ACL:{TGT}-2201:0/0x3/0x001f01ff" in folder            # inheritable, mask kept
    kept = xattrs(paths)
    again = reacl_files([paths[0]], SidMap(TABLE), ReaclMode.REPLACE, SRC)
    assert (again.scanned, again.changed) == (len(paths), 0)
    assert xattrs(paths) == kept


def test_add_keeps_each_source_ace_with_its_target_copy_after_it(fileserver: FileServer) -> None:
    paths = seeded(fileserver, 1, 2)
    reacl_files([paths[0]], SidMap(TABLE), ReaclMode.ADD, SRC)
    acl = [line for line in shown(fileserver, paths[-1]) if line.startswith("ACL:")]
    alice = acl.index(f"ACL:{SRC}-1102:0/0x10/0x001f01ff")
    assert acl[alice + 1] == f"ACL:{TGT}-2201:0/0x10/0x001f01ff"
    finance = acl.index(f"ACL:{SRC}-1104:0/0x10/0x001301ff")
    assert acl[finance + 1] == f"ACL:{TGT}-3104:0/0x10/0x001301ff"
    kept = xattrs(paths)
    again = reacl_files([paths[0]], SidMap(TABLE), ReaclMode.ADD, SRC)
    assert again.changed == 0 and xattrs(paths) == kept             # no duplicate copies
    removed = reacl_files([paths[0]], SidMap(TABLE), ReaclMode.REMOVE, SRC)
    assert removed.changed == len(paths)
    acl = [line for line in shown(fileserver, paths[-1]) if line.startswith("ACL:")]
    assert not any(line.startswith((f"ACL:{SRC}-1102:", f"ACL:{SRC}-1104:")) for line in acl)
    assert f"ACL:{TGT}-2201:0/0x10/0x001f01ff" in acl
    assert any(line.startswith(f"ACL:{SRC}-1109:") for line in acl)  # unmatched: kept


def test_a_file_made_after_the_reacl_inherits_the_target_sids(fileserver: FileServer) -> None:
    paths = seeded(fileserver, 1, 1)
    reacl_files([paths[0]], SidMap(TABLE), ReaclMode.REPLACE, SRC)
    folder = paths[1].relative_to(fileserver.share).as_posix()
    made = subprocess.run(["smbclient", fileserver.unc, "-A", str(fileserver.credentials),
                           "-c", f"cd {folder}; put /etc/hostname new.txt"],
                          capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stdout + made.stderr
    acl = shown(fileserver, paths[1] / "new.txt")
    # smbd marks inherited ACEs only under an auto-inherited parent (SE_DACL_AUTO_INHERITED)
    assert f"ACL:{TGT}-2201:0/0x0/0x001f01ff" in acl
    assert not any(f"{SRC}-1102" in line for line in acl)


def test_symlinks_are_not_followed(fileserver: FileServer, tmp_path: Path) -> None:
    outside = seeded(fileserver, 1, 1)
    paths = seeded(fileserver, 1, 1)
    (paths[1] / "link").symlink_to(outside[0], target_is_directory=True)
    kept = xattrs(outside)
    figures = reacl_files([paths[0]], SidMap(TABLE), ReaclMode.REPLACE, SRC)
    assert figures.scanned == len(paths) and xattrs(outside) == kept


KILLED_RUN = """
import sys
from pathlib import Path
from ferry_agent.device.descriptor import SidMap
from ferry_agent.device.files import reacl_files
table = dict(pair.split("=") for pair in sys.argv[3:])
print("started", flush=True)
reacl_files([Path(sys.argv[1])], SidMap(table), "replace", sys.argv[2])
"""


def test_a_run_killed_part_way_leaves_each_file_old_or_new_and_a_rerun_finishes(
        fileserver: FileServer) -> None:
    paths = seeded(fileserver, 20, 100)
    old = {p: b for p, b in zip(paths, xattrs(paths), strict=True)}
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'agent'}"}
    process = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(paths[0]), SRC,
                                *(f"{k}={v}" for k, v in TABLE.items())],
                               env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "started"
    # the top folder is translated first: once it changed, the run is under way
    eventually(lambda: os.getxattr(paths[0], XATTR_NAME) != old[paths[0]], "the first change",
               timeout=60)
    process.send_signal(signal.SIGKILL)
    process.wait()
    new_of = {}
    for path in paths:
        sids = {str(s) for s in parse_ntacl(os.getxattr(path, XATTR_NAME)).descriptor.sids()}
        assert (f"{SRC}-1102" in sids) != (f"{TGT}-2201" in sids), path   # old or new
        new_of[path] = f"{TGT}-2201" in sids
    rerun = reacl_files([paths[0]], SidMap(TABLE), ReaclMode.REPLACE, SRC)
    assert rerun.changed == sum(not done for done in new_of.values())
    assert rerun.error_count == 0
    assert all(f"{TGT}-2201" in {str(s) for s in parse_ntacl(b).descriptor.sids()}
               for b in xattrs(paths))
