#!/usr/bin/env python3
"""The local AWS twin: moto's server with amiguard's EBS encryption fidelity layer.

    python3 tests/twin/twin.py [--port N] [--endpoint-file FILE]

Listens on 127.0.0.1 (a free port unless --port is given), prints one line
`AMIGUARD_TWIN_ENDPOINT=http://127.0.0.1:PORT` on stdout once it answers (and writes the endpoint
to --endpoint-file if given), and serves EC2 and KMS until SIGTERM or SIGINT, when it stops cleanly
and exits 0. See fidelity.py for what it models beyond plain moto.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time

# No AMIs of moto's own: every AMI in a test is one the test registered, so nothing is implied.
os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fidelity  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    create_backend_app,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 (default): a free port")
    parser.add_argument("--endpoint-file", help="also write the endpoint URL to this file")
    parser.add_argument("--deny", action="append", default=[], metavar="ACTION",
                        help="answer this EC2 action with UnauthorizedOperation (repeatable)")
    parser.add_argument("--slow", action="append", default=[], metavar="ACTION=SECONDS",
                        help="delay this EC2 action (repeatable)")
    parser.add_argument("--latency", type=float, default=0.0, metavar="SECONDS",
                        help="add a network round trip to every request (benchmarks: a real "
                             "Region is a remote endpoint, the twin answers in microseconds)")
    args = parser.parse_args()

    slow = {a: float(s) for a, s in (item.split("=", 1) for item in args.slow)}
    fidelity.install(args.deny, slow)
    moto_app = DomainDispatcherApplication(create_backend_app)

    def app(environ: dict, start_response: object) -> object:
        if args.latency:
            time.sleep(args.latency)  # releases the GIL: concurrent requests wait together
        return moto_app(environ, start_response)
    server = make_server("127.0.0.1", args.port, app, threaded=True)
    endpoint = f"http://127.0.0.1:{server.server_port}"

    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    if args.endpoint_file:
        tmp = args.endpoint_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(endpoint + "\n")
        os.replace(tmp, args.endpoint_file)
    print(f"AMIGUARD_TWIN_ENDPOINT={endpoint}", flush=True)
    stop.wait()
    server.shutdown()
    thread.join(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
