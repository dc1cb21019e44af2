"""The `ferry-agent` command. Enrollment and the work loop arrive with the gateway."""

from __future__ import annotations

import argparse
import sys

from ferry_agent import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ferry-agent", description="Ferry on-premises agent.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("version", help="print the agent version")
    args = parser.parse_args(argv)
    if args.command == "version":
        print(f"ferry-agent {__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
