"""Command line: python -m warehouse_assets.simulator [--port 0] [--archive-dir DIR] ... (see --help).

Prints exactly one line to stdout once the socket is listening,
`simulator listening on http://127.0.0.1:PORT`, so a parent process can read the port.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Sequence

import uvicorn

from warehouse_assets.simulator.app import build_app
from warehouse_assets.simulator.config import parse_args
from warehouse_assets.simulator.ws_protocol import SimWebSocketProtocol


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        app = build_app(config)
    except (OSError, ValueError) as exc:
        print(f"simulator: cannot start: {exc}", file=sys.stderr)
        return 2
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.host, config.port))
    except OSError as exc:
        print(f"simulator: cannot bind {config.host}:{config.port}: {exc}; pick another --port (0 = any free)",
              file=sys.stderr)  # fmt: skip
        return 2
    sock.listen(2048)
    sock.set_inheritable(True)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level=config.log_level,
            access_log=False,
            server_header=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            ws=SimWebSocketProtocol,  # frame-level access for the streams (ws_protocol.py)
            ws_per_message_deflate=False,
            ws_ping_interval=None,  # the stream sessions ping on their own schedule
            ws_ping_timeout=None,
        )
    )
    print(f"simulator listening on http://{shown}:{port}", flush=True)
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
