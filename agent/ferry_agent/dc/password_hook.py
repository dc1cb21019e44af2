"""Ferry's hook for `samba-tool user syncpasswords --script`: hands one change to the agent.

Run by Samba's Python, isolated (`python3 -I -S password_hook.py SOCKET`, from the wrapper the
agent writes in its state folder: syncpasswords runs its script without arguments); it
imports nothing of the agent. syncpasswords gives it one account's LDIF on stdin: objectGUID,
objectSid, sAMAccountName and virtualSambaGPG, the new password as Samba stored it, still
GPG-encrypted. The hook never decrypts and writes nothing anywhere: it sends the LDIF as it
came to the agent over the Unix socket in the agent's state folder, and waits for its answer
as long as it takes (the agent answers once the change is handled, which is what lets
syncpasswords' cache move past it).

    hook  -> agent: 4 bytes big-endian length, then the LDIF (at most MAX_LDIF bytes)
    agent -> hook : one line, "OK <what>" or "ERROR <why>" (never a secret)

It then answers syncpasswords "DONE-EXIT: <what>"; anything else (an ERROR, the agent gone)
makes syncpasswords stop, and the change comes again when it runs next.
"""

from __future__ import annotations

import socket
import struct
import sys

MAX_LDIF = 1 << 20  # one account's LDIF with an armoured GPG message is a few KB
MAX_ANSWER = 4096
CONNECT_TIMEOUT = 30.0


def _answer(sock: socket.socket) -> str:
    data = b""
    while not data.endswith(b"\n") and len(data) < MAX_ANSWER:
        chunk = sock.recv(MAX_ANSWER - len(data))
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace").strip()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("FERRY-HOOK-FAILED: usage: password_hook.py SOCKET")
        return 2
    ldif = sys.stdin.buffer.read(MAX_LDIF + 1)
    if len(ldif) > MAX_LDIF:
        print(f"FERRY-HOOK-FAILED: the LDIF is larger than {MAX_LDIF} bytes")
        return 1
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(CONNECT_TIMEOUT)
            sock.connect(argv[1])
            sock.settimeout(None)  # the agent answers once the change is handled
            sock.sendall(struct.pack(">I", len(ldif)) + ldif)
            answer = _answer(sock)
    except OSError as exc:
        print(f"FERRY-HOOK-FAILED: the agent's socket {argv[1]}: {exc}")
        return 1
    if answer.startswith("OK"):
        print(f"DONE-EXIT: {answer[2:].strip()}")
        return 0
    print(f"FERRY-HOOK-FAILED: {answer or 'the agent closed the connection'}")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
