"""The device agent's INI: a good one becomes typed settings; a wrong one is refused naming
the file, the section, the key and the fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ferry_agent.device.config import DeviceConfigError, WindowsIni, load_config
from ferry_agent.device.linux_settings import LinuxSettings


@pytest.fixture
def workstation(tmp_path: Path) -> Path:
    """What a Linux workstation's INI points at: smb.conf, a share, a profiles folder, a hive."""
    (tmp_path / "smb.conf").write_text("[global]\n")
    (tmp_path / "share").mkdir()
    (tmp_path / "home").mkdir()
    (tmp_path / "SOFTWARE").write_bytes(b"regf")
    return tmp_path


def _ini(folder: Path, text: str) -> Path:
    path = folder / "device.ini"
    path.write_text(text.format(root=folder))
    return path


GOOD = """
[device]
name = ws1
labels = ring=pilot; site=paris
backend = linux

[linux]
# the workstation's own Samba configuration
smb_conf = {root}/smb.conf
join_tool = net
file_roots = {root}/share;{root}/home
software_hive = {root}/SOFTWARE
profiles_root = {root}/home
reboot_command = {true} --reboot "now please"
notice_command = {true}
winbind_pid_file = {root}/winbindd.pid
restart_command = {true} winbind
"""


def test_a_good_ini_becomes_typed_settings(workstation: Path) -> None:
    true = shutil.which("true")
    assert true is not None
    config = load_config(_ini(workstation, GOOD.replace("{true}", true)))
    assert config.name == "WS1"
    assert config.os == "linux"
    assert config.labels == {"ring": "pilot", "site": "paris"}
    assert config.linux == LinuxSettings(
        smb_conf=workstation / "smb.conf", join_tool="net",
        file_roots=(workstation / "share", workstation / "home"),
        software_hive=workstation / "SOFTWARE", profiles_root=workstation / "home",
        reboot_command=(true, "--reboot", "now please"), notice_command=(true,),
        winbind_pid_file=workstation / "winbindd.pid", restart_command=(true, "winbind"))


def test_defaults_need_only_the_smb_conf(workstation: Path) -> None:
    config = load_config(_ini(workstation, "[device]\nname = WS2\nbackend = linux\n"
                                           "[linux]\nsmb_conf = {root}/smb.conf\n"))
    assert config.labels == {}
    assert config.linux == LinuxSettings(smb_conf=workstation / "smb.conf")


def test_a_windows_device_needs_no_linux_section(workstation: Path) -> None:
    config = load_config(_ini(workstation, "[device]\nname = WS3\nbackend = Windows\n"))
    assert (config.backend, config.linux, config.windows) == ("windows", None, WindowsIni())


def test_a_windows_device_names_its_roots_and_keys(workstation: Path) -> None:
    config = load_config(_ini(workstation, "[device]\nname = WS3\nbackend = windows\n"
                                           "[windows]\nfile_roots = D:\\Shares; E:\\Data\n"
                                           "registry_keys = HKLM\\SOFTWARE\\Contoso\n"))
    assert config.windows == WindowsIni((Path("D:\\Shares"), Path("E:\\Data")),
                                        ("HKLM\\SOFTWARE\\Contoso",))


BAD = {
    "no device section": (
        "[linux]\nsmb_conf = {root}/smb.conf\n", "[device]", "add [device]"),
    "an unknown backend": (
        "[device]\nname = WS1\nbackend = macos\n", "[device] backend",
        "write backend = linux or backend = windows"),
    "no backend": (
        "[device]\nname = WS1\n", "[device] backend", "write backend = linux"),
    "a name too long for NetBIOS": (
        "[device]\nname = WORKSTATION-NUMBER-1\nbackend = windows\n", "[device] name",
        "1-15 letters, digits or '-'"),
    "a label without a value": (
        "[device]\nname = WS1\nlabels = ring\nbackend = windows\n", "[device] labels",
        "write labels = ring=pilot;site=paris"),
    "a label value with a space": (
        "[device]\nname = WS1\nlabels = site=new york\nbackend = windows\n",
        "[device] labels", "up to 63 letters"),
    "a label Ferry sets itself": (
        "[device]\nname = WS1\nlabels = ferry.dev/os=linux\nbackend = windows\n",
        "[device] labels", "without the ferry.dev/ prefix"),
    "a misspelt key": (
        "[device]\nname = WS1\nbackend = linux\n[linux]\nsmbconf = {root}/smb.conf\n",
        "[linux] smbconf", "use one of smb_conf, krb5_conf"),
    "a misspelt section": (
        "[devices]\nname = WS1\n", "[devices]", "use [device], [linux], [windows]"),
    "linux without its section": (
        "[device]\nname = WS1\nbackend = linux\n", "[linux]", "add [linux]"),
    "no smb_conf": (
        "[device]\nname = WS1\nbackend = linux\n[linux]\njoin_tool = adcli\n",
        "[linux] smb_conf", "write smb_conf = /etc/samba/smb.conf"),
    "an smb_conf that is not there": (
        "[device]\nname = WS1\nbackend = linux\n[linux]\nsmb_conf = {root}/nope.conf\n",
        "[linux] smb_conf", "give the path of the existing file"),
    "an unknown join tool": (
        "[device]\nname = WS1\nbackend = linux\n[linux]\nsmb_conf = {root}/smb.conf\n"
        "join_tool = realm\n", "[linux] join_tool", "write join_tool = adcli or"),
    "a file root that is not a folder": (
        "[device]\nname = WS1\nbackend = linux\n[linux]\nsmb_conf = {root}/smb.conf\n"
        "file_roots = {root}/share;{root}/gone\n", "[linux] file_roots",
        "give existing folders, separated by ';'"),
    "a reboot command that does not exist": (
        "[device]\nname = WS1\nbackend = linux\n[linux]\nsmb_conf = {root}/smb.conf\n"
        "reboot_command = no-such-reboot-tool now\n", "[linux] reboot_command",
        "give the full path of the program"),
    "a restart command that does not exist": (
        "[device]\nname = WS1\nbackend = linux\n[linux]\nsmb_conf = {root}/smb.conf\n"
        "restart_command = no-such-systemctl restart winbind\n", "[linux] restart_command",
        "give the full path of the program"),
    "a reboot command with an open quote": (
        "[device]\nname = WS1\nbackend = linux\n[linux]\nsmb_conf = {root}/smb.conf\n"
        "reboot_command = /bin/true 'now\n", "[linux] reboot_command",
        "quote arguments that hold spaces"),
    "a registry key outside HKLM": (
        "[device]\nname = WS1\nbackend = windows\n[windows]\nregistry_keys = HKCU\\Software\n",
        "[windows] registry_keys", "give keys as HKLM\\SOFTWARE\\Vendor"),
    "not an INI file": (
        "name = WS1\n", "[device]", "write it as [device] name = ..."),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_wrong_ini_names_the_file_section_key_and_fix(workstation: Path, case: str) -> None:
    text, where, fix = BAD[case]
    path = _ini(workstation, text)
    with pytest.raises(DeviceConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {where}"), message
    assert fix in message, message
    assert "\n" not in message


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DeviceConfigError, match=f"^{tmp_path / 'absent.ini'}: .*cannot be read"):
        load_config(tmp_path / "absent.ini")


def test_a_key_given_twice_is_named_with_its_line(workstation: Path) -> None:
    path = _ini(workstation, "[device]\nname = WS1\nname = WS2\nbackend = windows\n")
    with pytest.raises(DeviceConfigError, match=r"name in \[device\] is given twice \(line 3\)"):
        load_config(path)
