"""The `ferry-agent` command: enroll once with a token, then run the work loop.

    ferry-agent enroll --gateway https://ferry.example:443 --name dc-agent-1 \\
        --token-file /run/ferry/token [--ca gateway-ca.pem] [--state-dir /var/lib/ferry-agent]
    ferry-agent run --gateway https://ferry.example:443 --directory /etc/ferry-agent/ad.ini

On a workstation being moved between domains, the device agent (its INI: [device], [linux]):

    ferry-agent device enroll --gateway https://ferry.example:443 --config device.ini \\
        --token-file /run/ferry/device-token [--ca gateway-ca.pem]
    ferry-agent device run --gateway https://ferry.example:443 --config device.ini

Secrets never go on the command line: the enrollment token comes from --token-file or
$FERRY_AGENT_TOKEN, the directory password from the file the INI names.
"""

from __future__ import annotations

import argparse
import configparser
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ferry_agent import __version__
from ferry_agent.errors import FerryAgentError

# The directory (ldap3), identity (cryptography) and transport load only for the command that
# uses them: `ferry-agent --help` and `version` answer at once.
if TYPE_CHECKING:
    from ferry_agent.dc import LocalSambaDc
    from ferry_agent.directory.connection import DirectoryEndpoint
    from ferry_agent.directory.session import DirectorySession
    from ferry_agent.directory.subtrees import WriteSubtrees
    from ferry_agent.identity import Identity
    from ferry_agent.scripts.allowed import AllowedPrograms

DEFAULT_STATE_DIR = Path(os.environ.get("FERRY_AGENT_STATE_DIR", "/var/lib/ferry-agent"))
DEFAULT_DEVICE_STATE_DIR = DEFAULT_STATE_DIR / "device"   # beside a directory agent's, never on it
TOKEN_ENV = "FERRY_AGENT_TOKEN"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ferry-agent", description="Ferry on-premises agent.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("version", help="print the agent version")
    enroll = sub.add_parser("enroll", help="exchange an enrollment token for this agent's identity")
    enroll.add_argument("--gateway", required=True, help="https://host[:port] of the gateway")
    enroll.add_argument("--name", default=socket.gethostname().split(".")[0],
                        help="agent name (default: the host name)")
    enroll.add_argument("--token-file", type=Path,
                        help=f"file holding the single-use token (or set ${TOKEN_ENV})")
    enroll.add_argument("--ca", type=Path, help="CA bundle that signed the gateway's certificate")
    enroll.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    run = sub.add_parser("run", help="connect to the gateway and carry out directory work")
    run.add_argument("--gateway", required=True, help="https://host[:port] of the gateway")
    run.add_argument("--directory", type=Path, required=True,
                     help="INI file: [directory] host, port, base_dn, bind_user, password_file,"
                          " ca_file, server_name, write_subtrees (DNs this agent may write,"
                          " separated by ';'; unset: the agent only reads); on a domain"
                          " controller, [dc] smb_conf (and python: the interpreter with"
                          " Samba's bindings, default samba-tool's) for the work only a DC"
                          " can do (sIDHistory; password_changes = true and gnupg_home:"
                          " send its password changes)")
    run.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    _device_parser(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    if args.command == "version":
        print(f"ferry-agent {__version__}")
        return 0
    command = args.command if args.command != "device" else f"device {args.device_command}"
    try:
        if args.command == "enroll":
            return _enroll(args)
        if args.command == "device":
            return _device_enroll(args) if args.device_command == "enroll" else _device_run(args)
        return _run(args)
    except (FerryAgentError, ValueError, OSError) as exc:
        print(f"ferry-agent {command}: {exc}", file=sys.stderr)
        return 2


def _device_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    device = sub.add_parser("device", help="the device agent of a workstation being moved"
                                           " between domains")
    commands = device.add_subparsers(dest="device_command", required=True)
    config_help = ("INI file: [device] name, labels (key=value;...), backend = linux |"
                   " windows; [linux] smb_conf, krb5_conf, keytab, join_tool = adcli | net,"
                   " file_roots (';'), software_hive, profiles_root, reboot_command,"
                   " notice_command, winbind_pid_file, restart_command")
    enroll = commands.add_parser("enroll", help="exchange a device enrollment token for this"
                                                " device's identity")
    run = commands.add_parser("run", help="poll the runbook and carry out its actions")
    for each in (enroll, run):
        each.add_argument("--gateway", required=True, help="https://host[:port] of the gateway")
        each.add_argument("--config", type=Path, required=True, help=config_help)
        each.add_argument("--state-dir", type=Path, default=DEFAULT_DEVICE_STATE_DIR,
                          help=f"the device agent's identity, journal and log (default"
                               f" {DEFAULT_DEVICE_STATE_DIR})")
    enroll.add_argument("--token-file", type=Path,
                        help=f"file holding the enrollment token (or set ${TOKEN_ENV})")
    enroll.add_argument("--ca", type=Path, help="CA bundle that signed the gateway's certificate")


def _device_enroll(args: argparse.Namespace) -> int:
    from ferry_agent.device.config import load_config
    from ferry_agent.identity import create_key, store_certificate
    from ferry_agent.protocol import DeviceEnrollRequest, DeviceEnrollResponse, decode, encode
    from ferry_agent.transport import GatewayClient

    config = load_config(args.config)   # a wrong INI is refused before a key is made
    token = _token(args)
    csr = create_key(args.state_dir, config.name)
    with GatewayClient(args.gateway, ca_file=args.ca) as client:
        status, body = client.post("/v1/device/enroll", encode(DeviceEnrollRequest(
            token=token, name=config.name, host=socket.gethostname(), version=__version__,
            csr=csr.decode("ascii"), os=config.os, labels=config.labels)))
    if status != 200:
        message = str((body or {}).get("error") or "") if body else ""
        raise ValueError(f"enrollment refused ({status}) {message}".strip())
    answer: DeviceEnrollResponse = decode(DeviceEnrollResponse, body)
    store_certificate(args.state_dir, answer.certificate.encode(),
                      args.ca.read_bytes() if args.ca else None)
    print(f"enrolled device {config.name} ({answer.agent_id}) for migration"
          f" {answer.migration}; identity in {args.state_dir}")
    return 0


def _device_run(args: argparse.Namespace) -> int:
    from ferry_agent.device.agent import DeviceAgent, log_to
    from ferry_agent.device.config import load_config, make_backend
    from ferry_agent.device.journal import Journal
    from ferry_agent.identity import load_identity, private_key
    from ferry_agent.transport import GatewayClient

    config = load_config(args.config)
    identity = load_identity(args.state_dir)
    log_file = log_to(args.state_dir)
    stop = threading.Event()
    backend = make_backend(config, args.state_dir, stop)
    with GatewayClient.for_identity(args.gateway, identity) as client:
        agent = DeviceAgent(client, backend, Journal.open(args.state_dir),
                            private_key(identity), config.name, log_file, stop=stop)

        def shut_down(*_: object) -> None:
            if agent.busy and not stop.is_set():
                stop.set()   # an action half done runs again on the next start: let it end
                logging.getLogger("ferry_agent").warning(
                    "stopping after %s ends; signal again to stop now", agent.busy)
                return
            stop.set()
            raise SystemExit(0)

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, shut_down)
        return agent.run()


def _token(args: argparse.Namespace) -> str:
    token = (args.token_file.read_text(encoding="utf-8").strip() if args.token_file
             else os.environ.get(TOKEN_ENV, "").strip())
    if not token:
        raise ValueError(f"no enrollment token: give --token-file or set ${TOKEN_ENV}")
    return token


def _enroll(args: argparse.Namespace) -> int:
    from ferry_agent.identity import create_key, store_certificate
    from ferry_agent.protocol import EnrollRequest, EnrollResponse, decode, encode
    from ferry_agent.transport import GatewayClient

    token = _token(args)
    csr = create_key(args.state_dir, args.name)
    client = GatewayClient(args.gateway, ca_file=args.ca)
    status, body = client.post("/v1/enroll", encode(EnrollRequest(
        token=token, name=args.name, host=socket.gethostname(), version=__version__,
        csr=csr.decode("ascii"))))
    if status != 200:
        message = ((body or {}).get("error") or {}).get("message", "") if body else ""
        raise ValueError(f"enrollment refused ({status}) {message}".strip())
    answer: EnrollResponse = decode(EnrollResponse, body)
    # Later calls verify the gateway as enrollment did: with --ca, else the system store.
    identity = store_certificate(args.state_dir, answer.certificate.encode(),
                                 args.ca.read_bytes() if args.ca else None)
    print(f"enrolled as {identity.name} for environment {answer.environment};"
          f" identity in {args.state_dir}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from ferry_agent.directory.session import DirectorySession
    from ferry_agent.directory.subtrees import SETTING as WRITE_SUBTREES
    from ferry_agent.identity import load_identity, private_key
    from ferry_agent.loop import AgentLoop
    from ferry_agent.transport import GatewayClient

    identity = load_identity(args.state_dir)
    subtrees = write_subtrees(args.directory)
    session = DirectorySession(directory_endpoint(args.directory), subtrees,
                               local_dc(args.directory), private_key(identity),
                               script_programs(args.directory))
    logging.getLogger("ferry_agent").info(
        "writes allowed under: %s", "; ".join(subtrees.bases) if subtrees.bases
        else f"nowhere (read-only: no {WRITE_SUBTREES} in {args.directory})")
    client = GatewayClient.for_identity(args.gateway, identity)
    stop = threading.Event()
    loop = AgentLoop(client, session, stop=stop)
    sender = password_sender(args, identity, session, stop)

    def shut_down(*_: object) -> None:
        stop.set()
        if not loop.busy:
            raise SystemExit(0)  # leave the long-poll now; work in hand is finished first

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, shut_down)
    try:
        return loop.run()
    finally:
        stop.set()
        if sender is not None:
            sender.join(timeout=30)
        session.close()
        client.close()


def password_sender(args: argparse.Namespace, identity: Identity, session: DirectorySession,
                    stop: threading.Event) -> threading.Thread | None:
    """With [dc] password_changes = true: the DC's password changes, as they happen, sent
    sealed to the targets' agents (DCAgent password sync), on a thread of their own."""
    from ferry_agent.dc import PasswordWatcher
    from ferry_agent.password_relay import PasswordSender
    from ferry_agent.transport import GatewayClient

    config = _config(args.directory)
    if session.dc is None or not config.getboolean("dc", "password_changes", fallback=False):
        return None
    gnupg_home = config.get("dc", "gnupg_home", fallback="")
    if not gnupg_home:
        raise ValueError(f"{args.directory}: [dc] password_changes needs gnupg_home (the"
                         " GNUPGHOME holding the key smb.conf's 'password hash gpg key ids'"
                         " names)")
    watcher = PasswordWatcher(session.dc, args.state_dir / "password-changes",
                              Path(gnupg_home))
    watcher.start()
    sender = PasswordSender(GatewayClient.for_identity(args.gateway, identity), watcher, stop)

    def run() -> None:
        try:
            sender.run()
            session.password_changes = "stopped"
        except Exception as exc:  # the sync work goes on; the log and `ferry check` say why
            session.password_changes = f"stopped: {exc}"
            logging.getLogger("ferry_agent").exception("password changes stopped")
        finally:
            watcher.stop()   # an undelivered change comes again on the next start
            sender.client.close()

    session.password_changes = f"running (syncpasswords pid {watcher.pid})"
    thread = threading.Thread(target=run, name="password-changes", daemon=True)
    thread.start()
    logging.getLogger("ferry_agent").info("password changes of this DC are sent to Ferry")
    return thread


def directory_endpoint(path: Path) -> DirectoryEndpoint:
    """The [directory] section of the agent's INI file; the password is read from its file."""
    from ferry_agent.directory.connection import DirectoryEndpoint

    section = _directory_section(path)
    missing = [k for k in ("host", "bind_user", "password_file") if k not in section]
    if missing:
        raise ValueError(f"{path}: [directory] needs {', '.join(missing)}")
    password = Path(section["password_file"]).read_text(encoding="utf-8").rstrip("\r\n")
    return DirectoryEndpoint(
        host=section["host"], port=section.getint("port", 636), bind_user=section["bind_user"],
        password=password, base_dn=section.get("base_dn", ""),
        ca_file=section.get("ca_file"), server_name=section.get("server_name"),
        insecure=section.getboolean("insecure", False))


def write_subtrees(path: Path) -> WriteSubtrees:
    """Where this agent may write: [directory] write_subtrees; unset, it only reads."""
    from ferry_agent.directory.subtrees import SETTING, WriteSubtrees

    return WriteSubtrees.parse(_directory_section(path).get(SETTING),
                               f"[directory] of {path}")


def script_programs(path: Path) -> AllowedPrograms:
    """The programs workflow script steps may run with here ([scripts] allow); none unset."""
    from ferry_agent.scripts.allowed import SECTION, SETTING, AllowedPrograms

    config = _config(path)
    value = config[SECTION].get(SETTING) if SECTION in config else None
    return AllowedPrograms.parse(value, f"[{SECTION}] of {path}")


def local_dc(path: Path) -> LocalSambaDc | None:
    """The domain controller this agent runs on ([dc] smb_conf), or None."""
    from ferry_agent.dc import LocalSambaDc

    config = _config(path)
    if "dc" not in config:
        return None
    section = config["dc"]
    if "smb_conf" not in section:
        raise ValueError(f"{path}: [dc] needs smb_conf (the DC's smb.conf)")
    smb_conf = Path(section["smb_conf"])
    if not smb_conf.is_file():
        raise ValueError(f"{path}: [dc] smb_conf {smb_conf} is not a file")
    return LocalSambaDc(smb_conf, python=section.get("python", ""))


def _directory_section(path: Path) -> configparser.SectionProxy:
    config = _config(path)
    if "directory" not in config:
        raise ValueError(f"{path}: no [directory] section")
    return config["directory"]


def _config(path: Path) -> configparser.ConfigParser:
    config = configparser.ConfigParser(interpolation=None)  # '%' may be in a DN
    if not config.read(path, encoding="utf-8"):
        raise ValueError(f"{path}: cannot be read")
    return config


if __name__ == "__main__":
    sys.exit(main())
