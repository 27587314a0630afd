"""The API of the local stack: app.py served by Chalice's local server (what `chalice local`
runs), with an access log that leaves out query strings — the SDK's GET mode puts every
parameter, storage keys and UserSig included, into the query."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from chalice.cli.factory import CLIFactory
from chalice.local import ChaliceRequestHandler, LocalDevServer, ThreadedHTTPServer

from chalicelib.config import ConfigError

ROOT = Path(__file__).resolve().parents[2]


class RedactingRequestHandler(ChaliceRequestHandler):
    """Logs `METHOD /path status`, never the query string."""

    # http.server writes the headers and the body in two segments; with Nagle on, a client
    # that keeps its connection alive waits out its delayed ACK (~40 ms) on every reply.
    disable_nagle_algorithm = True

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        self.log_message('"%s %s" %s', self.command, self.path.split("?", 1)[0], str(code))


class BurstServer(ThreadedHTTPServer):
    """Chalice's threaded server with room for a burst of connections: its listen backlog of 5
    (socketserver's default) reset connections when twenty Creates came at once."""

    request_queue_size = 128


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--stage", default="local")
    args = parser.parse_args()
    factory = CLIFactory(project_dir=str(ROOT))
    config = factory.create_config_obj(chalice_stage_name=args.stage)
    try:  # app.py reads its settings as it is imported
        app = factory.load_chalice_app(environment_variables=config.environment_variables)
    except ConfigError as exc:
        print(f"the API could not start: {exc}", file=sys.stderr)
        return 2
    server = LocalDevServer(app, config, args.host, args.port, handler_cls=RedactingRequestHandler,
                            server_cls=BurstServer)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
