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

import pytest
from tests.integration.device.hive_readers import key_acls, libregf_read
from tests.integration.device.sids import SRC, TABLE, TGT, UNMATCHED
from tests.support.polling import eventually

from ferry.lab.fileserver import FileServer, seed_tree, smbcacls, template_acls
from ferry.lab.hives import key_security, ntuser_hive, software_hive
from ferry_agent.device.descriptor import SidMap, build_descriptor, parse_descriptor
from ferry_agent.device.files import reacl_files
from ferry_agent.device.ntacl import XATTR_NAME, parse_ntacl
from ferry_agent.device.outcome import ReaclMode, ReaclScope
from ferry_agent.device.reacl import ReaclTargets, reacl, undo_reacl
from ferry_agent.sid import parse_sid

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

import pytest
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


# ---------------------------------------------------------------------- hives and profiles
ALICE, DAVE = f"{SRC}-1102", f"{SRC}-1109"
ALICE_TGT, FINANCE, FINANCE_TGT = f"{TGT}-2201", f"{SRC}-1104", f"{TGT}-3104"
PROFILE_LIST = "\\Microsoft\\Windows NT\\CurrentVersion\\ProfileList"


@pytest.fixture
def device(tmp_path: Path, fileserver: FileServer) -> ReaclTargets:
    """A device's disk: SOFTWARE (ProfileList: alice, dave; key ACLs naming finance and
    alice), alice's and dave's profile folders with NTUSER.DAT, and a file tree served by
    smbd, with an NT ACL on alice's profile folder written by smbd."""
    config = tmp_path / "config"
    config.mkdir()
    software_hive(config / "SOFTWARE", {ALICE: "alice", DAVE: "dave"},
                  key_security("S-1-5-32-544", ["S-1-5-18", "S-1-5-32-544", FINANCE]),
                  {"App1": key_security(ALICE, [ALICE, DAVE])})
    users = fileserver.share / f"users-{uuid.uuid4().hex[:8]}"
    for name, sid in (("alice", ALICE), ("dave", DAVE)):
        (users / name).mkdir(parents=True)
        ntuser_hive(users / name / "NTUSER.DAT", sid, name)
    folder_acl = os.getxattr(seeded(fileserver, 1, 0)[0], XATTR_NAME)
    os.setxattr(users / "alice", XATTR_NAME, folder_acl)
    tree = seeded(fileserver, 2, 3)[0]
    return ReaclTargets((tree,), config / "SOFTWARE", users, None)


def profile_keys(hive: Path) -> dict[str, dict[str, str]]:
    keys = libregf_read(hive)["keys"]
    prefix = PROFILE_LIST + "\\"
    return {path[len(prefix):]: values for path, values in keys.items() if path.startswith(prefix)}


def sid_hex(sid: str) -> str:
    return parse_sid(sid).to_bytes().hex()


ALL = [ReaclScope.FILES, ReaclScope.REGISTRY, ReaclScope.PROFILES]


def test_replace_on_a_device_translates_files_keys_and_profiles(
        device: ReaclTargets, fileserver: FileServer, tmp_path: Path) -> None:
    assert device.software_hive and device.profiles_root
    outcome = reacl(device, TABLE, SRC, ReaclMode.REPLACE, ALL)
    assert outcome.ok, outcome.details
    assert set(outcome.details["unmatched"]) == UNMATCHED       # dave's files, key, profile
    assert outcome.details["files"]["changed"] == outcome.details["files"]["scanned"] == 9
    # ProfileList as libregf reads it: alice's entry under the target SID, its Sid value the
    # target's; the source kept as .bak; dave (no match) left
    profiles = profile_keys(device.software_hive)
    assert set(profiles) == {"S-1-5-18", ALICE_TGT, f"{ALICE}.bak", DAVE}
    assert profiles[ALICE_TGT]["Sid"] == sid_hex(ALICE_TGT)
    assert profiles[f"{ALICE}.bak"]["Sid"] == sid_hex(ALICE)
    assert profiles[ALICE_TGT]["ProfileImagePath"] == profiles[f"{ALICE}.bak"]["ProfileImagePath"]
    assert not libregf_read(device.software_hive)["corrupted"]
    # key security as Samba's profiles tool reads it
    acls = key_acls(device.software_hive, tmp_path)
    assert acls["ROOT"]["dacl"] == ["S-1-5-18", "S-1-5-32-544", FINANCE_TGT]
    assert acls["ROOT\\Ferry\\App1"] == {"owner": ALICE_TGT, "group": "S-1-5-18",
                                        "dacl": [ALICE_TGT, DAVE]}
    alice = key_acls(device.profiles_root / "alice" / "NTUSER.DAT", tmp_path)
    assert {acl["owner"] for acl in alice.values()} == {ALICE_TGT}
    assert all(acl["dacl"] == ["S-1-5-18", "S-1-5-32-544", ALICE_TGT] for acl in alice.values())
    dave = key_acls(device.profiles_root / "dave" / "NTUSER.DAT", tmp_path)
    assert {acl["owner"] for acl in dave.values()} == {DAVE}     # not in the table: left
    # alice's profile folder, as smbd shows it
    assert f"OWNER:{ALICE_TGT}" in shown(fileserver, device.profiles_root / "alice")
    profiles_details = outcome.details["profiles"]
    assert profiles_details["changed"] == 1
    assert profiles_details["ntuser"]["changed"] == profiles_details["ntuser"]["scanned"] == 5
    assert profiles_details["folders"]["changed"] == 1

    hives = [device.software_hive.read_bytes(),
             (device.profiles_root / "alice" / "NTUSER.DAT").read_bytes()]
    again = reacl(device, TABLE, SRC, ReaclMode.REPLACE, ALL)
    assert again.ok, again.details
    assert [again.details[scope]["changed"] for scope in ("files", "registry", "profiles")] == [
        0, 0, 0]
    assert hives == [device.software_hive.read_bytes(),
                     (device.profiles_root / "alice" / "NTUSER.DAT").read_bytes()]


def test_add_grows_key_descriptors_into_a_new_bin_and_keeps_the_source(
        device: ReaclTargets, tmp_path: Path) -> None:
    assert device.software_hive
    before = libregf_read(device.software_hive)["keys"]
    size = device.software_hive.stat().st_size
    outcome = reacl(device, TABLE, SRC, ReaclMode.ADD, [ReaclScope.REGISTRY, ReaclScope.PROFILES])
    assert outcome.ok, outcome.details
    assert device.software_hive.stat().st_size > size              # grown sk cells moved
    acls = key_acls(device.software_hive, tmp_path)
    assert acls["ROOT"]["dacl"] == ["S-1-5-18", "S-1-5-32-544", FINANCE, FINANCE_TGT]
    assert acls["ROOT\\Ferry\\App1"]["dacl"] == [ALICE, ALICE_TGT, DAVE]
    after = libregf_read(device.software_hive)
    assert not after["corrupted"]
    profiles = profile_keys(device.software_hive)
    assert set(profiles) == {"S-1-5-18", ALICE, ALICE_TGT, DAVE}   # add: the source stays
    assert {k: v for k, v in after["keys"].items() if ALICE_TGT not in k} == before
    kept = device.software_hive.read_bytes()
    again = reacl(device, TABLE, SRC, ReaclMode.ADD, [ReaclScope.REGISTRY, ReaclScope.PROFILES])
    assert again.ok and device.software_hive.read_bytes() == kept
    removed = reacl(device, TABLE, SRC, ReaclMode.REMOVE, [ReaclScope.PROFILES])
    assert removed.ok, removed.details
    assert set(profile_keys(device.software_hive)) == {"S-1-5-18", ALICE_TGT, DAVE}


def test_undo_of_a_replace_puts_everything_back(device: ReaclTargets, tmp_path: Path) -> None:
    assert device.software_hive and device.profiles_root
    tree = list(walk_paths(device.file_roots[0]))
    files_before = xattrs(tree)
    acls_before = key_acls(device.software_hive, tmp_path)
    profiles_before = profile_keys(device.software_hive)
    ntuser = device.profiles_root / "alice" / "NTUSER.DAT"
    ntuser_before = key_acls(ntuser, tmp_path)
    assert reacl(device, TABLE, SRC, ReaclMode.REPLACE, ALL).ok
    undone = undo_reacl(device, TABLE, SRC, ReaclMode.REPLACE, ALL)
    assert undone.ok, undone.details
    assert xattrs(tree) == files_before                           # byte for byte
    assert key_acls(device.software_hive, tmp_path) == acls_before
    assert profile_keys(device.software_hive) == profiles_before  # .bak back, target gone
    assert key_acls(ntuser, tmp_path) == ntuser_before
    nothing = undo_reacl(device, TABLE, SRC, ReaclMode.ADD, ALL)
    assert nothing.ok and "nothing to undo" in nothing.message


def walk_paths(root: Path) -> list[Path]:
    return [root, *sorted(p for p in root.rglob("*"))]


def test_bad_input_is_refused_before_anything_is_touched(device: ReaclTargets) -> None:
    tree = walk_paths(device.file_roots[0])
    kept = xattrs(tree)
    missing = ReaclTargets(device.file_roots, device.software_hive, Path("/nonexistent/users"),
                           None)
    outcome = reacl(missing, TABLE, SRC, ReaclMode.REPLACE, ALL)
    assert not outcome.ok
    assert "[linux] profiles_root names /nonexistent/users" in outcome.message
    bad_table = reacl(device, {ALICE: "alice"}, SRC, ReaclMode.REPLACE, ALL)
    assert not bad_table.ok and "'alice'" in bad_table.message
    bad_domain = reacl(device, TABLE, ALICE, ReaclMode.REPLACE, ALL)
    assert not bad_domain.ok and "no domain SID" in bad_domain.message
    assert xattrs(tree) == kept


def test_a_damaged_hive_is_reported_and_left_as_it_is(device: ReaclTargets) -> None:
    assert device.software_hive
    data = bytearray(device.software_hive.read_bytes())
    data[0x30] ^= 0xFF                                            # base block checksum now wrong
    device.software_hive.write_bytes(bytes(data))
    outcome = reacl(device, TABLE, SRC, ReaclMode.REPLACE, [ReaclScope.REGISTRY])
    assert not outcome.ok
    assert "checksum" in " ".join(outcome.details["errors"])
    assert device.software_hive.read_bytes() == bytes(data)


# ---------------------------------------------------------------------- local groups
def listmem(conf: Path, alias: str) -> set[str]:
    done = subprocess.run(["net", "-s", str(conf), "groupmap", "listmem", alias],
                          capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def addmem(conf: Path, alias: str, *sids: str) -> None:
    for sid in sids:
        subprocess.run(["net", "-s", str(conf), "groupmap", "addmem", alias, sid],
                       capture_output=True, check=True)


def test_local_groups_replace_and_add_on_a_member_workstation(workstation: Path) -> None:
    addmem(workstation, "S-1-5-32-544", ALICE, FINANCE, DAVE)
    addmem(workstation, "S-1-5-32-545", f"{SRC}-513")
    targets = ReaclTargets((), None, None, workstation)
    added = reacl(targets, TABLE, SRC, ReaclMode.ADD, [ReaclScope.LOCAL_GROUPS])
    assert added.ok, added.details
    assert listmem(workstation, "S-1-5-32-544") == {ALICE, FINANCE, DAVE, ALICE_TGT, FINANCE_TGT}
    assert added.details["unmatched"] == [DAVE]
    again = reacl(targets, TABLE, SRC, ReaclMode.ADD, [ReaclScope.LOCAL_GROUPS])
    assert again.ok and again.details["localGroups"]["changed"] == 0
    replaced = reacl(targets, TABLE, SRC, ReaclMode.REPLACE, [ReaclScope.LOCAL_GROUPS])
    assert replaced.ok, replaced.details
    assert listmem(workstation, "S-1-5-32-544") == {DAVE, ALICE_TGT, FINANCE_TGT}
    assert listmem(workstation, "S-1-5-32-545") == {f"{TGT}-513"}
    undone = undo_reacl(targets, TABLE, SRC, ReaclMode.REPLACE, [ReaclScope.LOCAL_GROUPS])
    assert undone.ok, undone.details
    assert listmem(workstation, "S-1-5-32-544") == {ALICE, FINANCE, DAVE}
