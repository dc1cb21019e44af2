"""A real HTTP server for webhook tests, run as its own process: each POST saved as
<folder>/<n>.json (headers and body) and answered with the status in <folder>/answer
(default 200).

usage: webhook_server.py HOST FOLDER   (prints "ready PORT")
"""

from __future__ import annotations

import base64
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def main() -> None:
    host, folder = sys.argv[1:3]
    saved = Path(folder)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            number = len(list(saved.glob("*.json")))
            tmp = saved / f"{number}.tmp"
            tmp.write_text(json.dumps({
                "path": self.path, "headers": dict(self.headers.items()),
                "body": base64.b64encode(body).decode()}))
            tmp.rename(saved / f"{number}.json")
            answer = saved / "answer"
            self.send_response(int(answer.read_text()) if answer.exists() else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    print(f"ready {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
