"""Start the MLflow UI for the project's store on 127.0.0.1 and print the runs table's URL.

Usage: `PYTHONPATH=src python -m lstm_vs_rnn.ui [--port 5000] [--host 127.0.0.1]` (`make ui`).
"""

import argparse
import os
import socket
import subprocess
import sys

from lstm_vs_rnn.cli import run_entry_point
from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.params import load_params
from lstm_vs_rnn.paths import PATHS
from lstm_vs_rnn.tracking import redact, tracking_uri, ui_url


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind; the default keeps the UI on this machine",
    )
    return parser.parse_args()


def ensure_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UserError(
                f"port {port} on {host} is not available ({exc.strerror}); "
                f"stop what uses it or pick another, e.g. 'make ui PORT={port + 1}'"
            ) from None


def main() -> None:
    args = parse_args()
    params = load_params(PATHS.params)
    uri = tracking_uri()
    if not uri.startswith("sqlite:///"):
        raise UserError(
            f"MLFLOW_TRACKING_URI is {redact(uri)}: that server has its own UI; "
            f"open it in a browser (this command serves the local SQLite store)"
        )
    ensure_port_free(args.host, args.port)
    base = f"http://{args.host}:{args.port}"
    print(
        f"MLflow UI for {uri}\n  runs table: {ui_url(base, params)}\n  Ctrl-C stops it.", flush=True
    )
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        uri,
        "--host",
        args.host,
        "--port",
        str(args.port),
        "--workers",
        "1",
    ]
    server = subprocess.Popen(command, env=os.environ.copy())
    try:
        server.wait()
    except KeyboardInterrupt:
        server.terminate()
        server.wait(timeout=30)
        print("MLflow UI stopped.")


if __name__ == "__main__":
    run_entry_point(main)
