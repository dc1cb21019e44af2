"""The device agent's INI file (`ferry-agent device ... --config FILE`) as typed settings,
and the backend made from them.

    [device]
    # the computer's NetBIOS name (default: the host name)
    name = WS1
    # what DeviceMigration selectors match
    labels = ring=pilot;site=paris
    backend = linux
    [linux]
    smb_conf = /etc/samba/smb.conf
    join_tool = adcli
    # folders whose NT ACLs (xattr security.NTACL) ReACL translates
    file_roots = /srv/share;/home
    # run once the device joined another domain (or rolled back), so winbindd uses it
    restart_command = systemctl restart winbind
    ...

Comments go on lines of their own: ';' separates the items of a list.

Every mistake is reported before anything on the device is touched, naming the file, the
section, the key and what to write instead.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ferry_agent.device.linux_settings import LinuxSettings
from ferry_agent.errors import FerryAgentError

if TYPE_CHECKING:
    from ferry_agent.device.backend import DeviceBackend

BACKENDS = ("linux", "windows")
JOIN_TOOLS = ("adcli", "net")
# A computer's NetBIOS name: what its sAMAccountName holds without the "$".
_DEVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,14}")
# Kubernetes label syntax, since DeviceMigration selectors match these labels.
_LABEL_KEY = re.compile(r"([a-z0-9.-]{1,253}/)?[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?")
_RESERVED_PREFIX = "ferry.dev/"

_DEVICE_KEYS = ("name", "labels", "backend")
_LINUX_KEYS = ("smb_conf", "krb5_conf", "keytab", "join_tool", "file_roots", "software_hive",
               "profiles_root", "reboot_command", "notice_command", "winbind_pid_file",
               "restart_command")
_WINDOWS_KEYS = ("file_roots", "registry_keys")
_SECTIONS = {"device": _DEVICE_KEYS, "linux": _LINUX_KEYS, "windows": _WINDOWS_KEYS}


class DeviceConfigError(FerryAgentError, ValueError):
    """A wrong device INI: which file, section and key, what is wrong and the fix."""

    def __init__(self, path: Path, section: str, key: str, problem: str, fix: str):
        self.path, self.section, self.key = path, section, key
        where = f"[{section}] {key}" if key else f"[{section}]"
        super().__init__(f"{path}: {where}: {problem}; {fix}")


@dataclass(frozen=True)
class WindowsIni:
    """[windows]: what ReACL covers besides profiles and local groups."""

    file_roots: tuple[Path, ...] = ()
    registry_keys: tuple[str, ...] = ()        # e.g. HKLM\SOFTWARE\Contoso


@dataclass(frozen=True)
class DeviceConfig:
    """The whole INI: who the device is and how its actions are carried out."""

    path: Path
    name: str
    backend: str
    labels: dict[str, str] = field(default_factory=dict)
    linux: LinuxSettings | None = None
    windows: WindowsIni | None = None

    @property
    def os(self) -> str:
        return self.backend


def load_config(path: Path) -> DeviceConfig:
    """Read and check `path`; DeviceConfigError says what to change."""
    parser = configparser.ConfigParser(interpolation=None, empty_lines_in_values=False)
    try:
        with path.open(encoding="utf-8") as source:
            parser.read_file(source)
    except OSError as exc:
        raise DeviceConfigError(path, "device", "", f"the file cannot be read"
                                f" ({exc.strerror})", "give --config the device agent's INI"
                                " file") from None
    except configparser.Error as exc:
        raise DeviceConfigError(path, "device", "", f"not an INI file ({_parse_problem(exc)})",
                                "write it as [device] name = ..., one key per line") from None
    _no_strangers(path, parser)
    if "device" not in parser:
        raise DeviceConfigError(path, "device", "", "the section is missing",
                                "add [device] with name, labels and backend = linux | windows")
    device = parser["device"]
    backend = device.get("backend", "").strip().lower()
    if backend not in BACKENDS:
        raise DeviceConfigError(path, "device", "backend",
                                f"{device.get('backend', '')!r} is not a backend" if
                                "backend" in device else "not set",
                                "write backend = linux or backend = windows")
    return DeviceConfig(path=path, name=_name(path, device), backend=backend,
                        labels=_labels(path, device.get("labels", "")),
                        linux=_linux(path, parser) if backend == "linux" else None,
                        windows=_windows(path, parser) if backend == "windows" else None)


def make_backend(config: DeviceConfig, state_dir: Path,
                 stop: threading.Event | None = None) -> DeviceBackend:
    """The backend the INI names, imported only now (each has its own dependencies); it
    keeps what a rollback needs in `state_dir`, and `stop` calls off a waiting reboot."""
    if config.backend == "linux":
        from ferry_agent.device.linux import LinuxBackend

        assert config.linux is not None   # load_config requires [linux] for this backend
        return LinuxBackend(config.linux, state_dir, stop)
    from ferry_agent.device.windows import WindowsBackend, WindowsSettings

    windows = config.windows or WindowsIni()
    return WindowsBackend(WindowsSettings(state_dir=state_dir, file_roots=windows.file_roots,
                                          registry_keys=windows.registry_keys))


def _parse_problem(exc: configparser.Error) -> str:
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return f"line {exc.lineno} comes before any [section]"
    if isinstance(exc, configparser.DuplicateOptionError | configparser.DuplicateSectionError):
        what = f"{exc.option} in [{exc.section}]" if isinstance(
            exc, configparser.DuplicateOptionError) else f"[{exc.section}]"
        return f"{what} is given twice (line {exc.lineno})"
    if isinstance(exc, configparser.ParsingError) and exc.errors:
        return f"line {exc.errors[0][0]} is neither a [section] nor key = value"
    return type(exc).__name__


# -- sections -----------------------------------------------------------------------------------

def _no_strangers(path: Path, parser: configparser.ConfigParser) -> None:
    """A misspelt section or key would otherwise be silently ignored."""
    for section in parser.sections():
        if section not in _SECTIONS:
            raise DeviceConfigError(path, section, "", "not a section of the device agent",
                                    f"use {', '.join(f'[{s}]' for s in _SECTIONS)}")
        known = _SECTIONS[section]
        for key in parser[section]:
            if key not in known:
                raise DeviceConfigError(path, section, key, "not a setting of this section",
                                        f"use one of {', '.join(known)}" if known
                                        else "leave the section empty")


def _name(path: Path, device: configparser.SectionProxy) -> str:
    given = "name" in device
    name = device.get("name", "").strip() if given else socket.gethostname().split(".")[0]
    if not _DEVICE_NAME.fullmatch(name):
        what = f"{name!r}" if given else f"the host name {name!r} (the default)"
        raise DeviceConfigError(path, "device", "name", f"{what} is not a computer name",
                                "write the NetBIOS name: 1-15 letters, digits or '-',"
                                " starting with a letter or digit")
    return name.upper()


def _labels(path: Path, text: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in (part.strip() for part in text.split(";")):
        if not item:
            continue
        key, equals, value = (s.strip() for s in item.partition("="))
        if not equals or not _LABEL_KEY.fullmatch(key) or len(key.rpartition("/")[2]) > 63:
            raise DeviceConfigError(path, "device", "labels", f"{item!r} is not key=value with"
                                    " a label key", "write labels = ring=pilot;site=paris"
                                    " (keys: letters, digits, '-', '_', '.', up to 63)")
        if not _LABEL_VALUE.fullmatch(value):
            raise DeviceConfigError(path, "device", "labels", f"the value of {key!r},"
                                    f" {value!r}, is not a label value", "use up to 63"
                                    " letters, digits, '-', '_' or '.', starting and ending"
                                    " with a letter or digit")
        if key.startswith(_RESERVED_PREFIX):
            raise DeviceConfigError(path, "device", "labels", f"{key!r} is set by Ferry",
                                    f"choose a key without the {_RESERVED_PREFIX} prefix")
        if key in labels:
            raise DeviceConfigError(path, "device", "labels", f"{key!r} is given twice",
                                    "give each key once")
        labels[key] = value
    return labels


def _windows(path: Path, parser: configparser.ConfigParser) -> WindowsIni:
    if not parser.has_section("windows"):
        return WindowsIni()
    section = parser["windows"]
    roots = tuple(Path(p.strip()) for p in section.get("file_roots", "").split(";")
                  if p.strip())
    for root in roots:
        # Checked where the paths mean something: on the Windows device itself.
        if os.name == "nt" and not root.is_dir():
            raise DeviceConfigError(path, "windows", "file_roots", f"{root} is not a folder",
                                    "give existing folders, separated by ';'")
    keys = tuple(k.strip() for k in section.get("registry_keys", "").split(";") if k.strip())
    for key in keys:
        if not key.upper().startswith(("HKLM\\", "HKEY_LOCAL_MACHINE\\")):
            raise DeviceConfigError(path, "windows", "registry_keys", f"{key!r} is not under"
                                    " HKLM", "give keys as HKLM\\SOFTWARE\\Vendor, separated"
                                    " by ';'")
    return WindowsIni(roots, keys)


def _linux(path: Path, parser: configparser.ConfigParser) -> LinuxSettings:
    if "linux" not in parser:
        raise DeviceConfigError(path, "linux", "", "the section is missing (backend = linux)",
                                "add [linux] with at least smb_conf = /etc/samba/smb.conf")
    section = parser["linux"]
    defaults = LinuxSettings(smb_conf=Path())

    def file(key: str, *, must_exist: bool) -> Path | None:
        text = section.get(key, "").strip()
        if not text:
            return None
        found = Path(text)
        if must_exist and not found.is_file():
            raise DeviceConfigError(path, "linux", key, f"{found} is not a file",
                                    f"give the path of the existing file, or remove {key}")
        return found

    def folder(key: str, text: str) -> Path:
        found = Path(text)
        if not found.is_dir():
            raise DeviceConfigError(path, "linux", key, f"{found} is not a folder",
                                    "give existing folders, separated by ';'")
        return found

    def command(key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        text = section.get(key, "").strip()
        if not text:
            return default
        try:
            words = tuple(shlex.split(text))
        except ValueError as exc:
            raise DeviceConfigError(path, "linux", key, f"cannot be split into words ({exc})",
                                    "quote arguments that hold spaces") from None
        if shutil.which(words[0]) is None:
            raise DeviceConfigError(path, "linux", key, f"{words[0]!r} is not an executable"
                                    " command here", "give the full path of the program")
        return words

    smb_conf = file("smb_conf", must_exist=True)
    if smb_conf is None:
        raise DeviceConfigError(path, "linux", "smb_conf", "not set",
                                "write smb_conf = /etc/samba/smb.conf (the workstation's)")
    join_tool = section.get("join_tool", defaults.join_tool).strip().lower()
    if join_tool not in JOIN_TOOLS:
        raise DeviceConfigError(path, "linux", "join_tool", f"{join_tool!r} is not a join tool",
                                "write join_tool = adcli or join_tool = net")
    profiles = section.get("profiles_root", "").strip()
    return LinuxSettings(
        smb_conf=smb_conf,
        krb5_conf=file("krb5_conf", must_exist=False) or defaults.krb5_conf,
        keytab=file("keytab", must_exist=False) or defaults.keytab,
        join_tool=join_tool,
        file_roots=tuple(folder("file_roots", part.strip())
                         for part in section.get("file_roots", "").split(";") if part.strip()),
        software_hive=file("software_hive", must_exist=True),
        profiles_root=folder("profiles_root", profiles) if profiles else None,
        reboot_command=command("reboot_command", defaults.reboot_command),
        notice_command=command("notice_command", defaults.notice_command),
        winbind_pid_file=file("winbind_pid_file", must_exist=False),
        restart_command=command("restart_command", defaults.restart_command),
    )
