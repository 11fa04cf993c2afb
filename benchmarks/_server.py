"""The benchmark's local server, run in its own process so it does not share the client's GIL.

One lean ``aiohttp`` low-level server answers two routes on two sockets (plain HTTP and
HTTPS with a throwaway certificate):

* ``POST /api/v1/inference/run_chat_completion``: Websim's chat route, ``{"content": ...}``;
* ``POST /v1/chat/completions``: an OpenAI-shaped ChatCompletion that langchain-openai accepts.

``start_server()`` makes the certificate (``trustme``), starts this file as a subprocess
(``python _server.py CERT_CHAIN_PEM`` prints ``READY <http port> <https port>`` and serves until
its standard input closes, so it never outlives the benchmark) and gives the URLs and an
``ssl.SSLContext`` that trusts the certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

ANSWER = "2 + 2 is 4."
WEBSIM_CHAT_PATH = "/api/v1/inference/run_chat_completion"
OPENAI_CHAT_PATH = "/v1/chat/completions"

_WEBSIM_BODY = json.dumps({"content": ANSWER}).encode()
_OPENAI_BODY = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": ANSWER},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 14, "completion_tokens": 7, "total_tokens": 21},
    }
).encode()
_BODIES = {WEBSIM_CHAT_PATH: _WEBSIM_BODY, OPENAI_CHAT_PATH: _OPENAI_BODY}


async def _handle(request: web.BaseRequest) -> web.Response:
    await request.read()  # a real server reads the whole request before answering
    body = _BODIES.get(request.path)
    if request.method != "POST" or body is None:
        return web.Response(status=404, text="not found")
    return web.Response(body=body, content_type="application/json")


def _listen() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


async def _serve(cert_chain_pem: str) -> None:
    loop = asyncio.get_running_loop()
    stdin_closed = asyncio.Event()

    def wait_for_eof() -> None:
        sys.stdin.buffer.read()
        loop.call_soon_threadsafe(stdin_closed.set)

    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert_chain_pem)
    runner = web.ServerRunner(web.Server(_handle, access_log=None), handle_signals=False)
    await runner.setup()
    plain_sock, tls_sock = _listen(), _listen()
    await web.SockSite(runner, plain_sock).start()
    await web.SockSite(runner, tls_sock, ssl_context=tls).start()
    print(f"READY {plain_sock.getsockname()[1]} {tls_sock.getsockname()[1]}", flush=True)
    threading.Thread(target=wait_for_eof, daemon=True).start()
    try:
        await stdin_closed.wait()
    finally:
        await runner.cleanup()


@dataclass(frozen=True)
class Server:
    http_url: str
    https_url: str
    trust: ssl.SSLContext
    """Client context trusting the throwaway certificate (verification stays on)."""
    ca_pem: str
    """Path of the CA certificate, for clients configured by file."""


@contextlib.contextmanager
def start_server() -> Iterator[Server]:
    import trustme  # benchmark-only dependency

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    with tempfile.TemporaryDirectory(prefix="websim-bench-") as tmp:
        chain = Path(tmp, "server.pem")
        cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
        ca_pem = Path(tmp, "ca.pem")
        ca.cert_pem.write_to_path(str(ca_pem))
        proc = subprocess.Popen(
            [sys.executable, __file__, str(chain)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            # A server that dies before READY closes its stdout: readline returns "".
            line = proc.stdout.readline().strip()
            if not line.startswith("READY "):
                raise RuntimeError(f"the benchmark server did not start: {line!r}")
            http_port, https_port = (int(p) for p in line.split()[1:3])
            trust = ssl.create_default_context()
            ca.configure_trust(trust)
            yield Server(
                http_url=f"http://127.0.0.1:{http_port}",
                https_url=f"https://127.0.0.1:{https_port}",
                trust=trust,
                ca_pem=str(ca_pem),
            )
        finally:
            _stop(proc)


def _stop(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(OSError):
        if proc.stdin is not None:
            proc.stdin.close()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: _server.py CERT_CHAIN_PEM")
    asyncio.run(_serve(sys.argv[1]))
