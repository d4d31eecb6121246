"""A raw one-hop gRPC proxy: the baseline the crossroads core is measured against.

It accepts any unary call over mutual TLS and forwards the request bytes, untouched and
unparsed, to the same method on one upstream address over mutual TLS, then returns the
upstream's reply bytes. It authenticates both hops like the core does, but checks nothing,
routes nothing and audits nothing: whatever the core costs beyond this is the price of the
crossroads' work.

Run: `python -m testbed.proxy --pki DIR/pki --upstream 127.0.0.1:PORT --port-file FILE`.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Sequence
from pathlib import Path

import grpc
from grpc import aio

from crossroads.forwarder import LOOPBACK_HTTP2_OPTIONS
from crossroads.pki import channel_credentials, server_credentials

DEFAULT_DEADLINE_S = 5.0
# the same HTTP/2 settings as the core on both hops, so that the baseline is as cheap as the
# transport allows and the comparison is of the work done, not of the settings
SERVER_OPTIONS = (("grpc.so_reuseport", 0), *LOOPBACK_HTTP2_OPTIONS)


class _ForwardAll(grpc.GenericRpcHandler):  # type: ignore[misc]  # grpc ships no type hints
    """Serves every method as unary-unary bytes in, bytes out, forwarded upstream."""

    def __init__(self, channel: aio.Channel, deadline_s: float) -> None:
        self._channel = channel
        self._deadline = deadline_s
        self._calls: dict[str, aio.UnaryUnaryMultiCallable] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method: str = handler_call_details.method
        call = self._calls.get(method)
        if call is None:
            call = self._calls[method] = self._channel.unary_unary(method)
        deadline = self._deadline

        async def forward(request: bytes, context: aio.ServicerContext) -> bytes:
            reply: bytes = await call(request, timeout=deadline)
            return reply

        return grpc.unary_unary_rpc_method_handler(forward)


async def serve_proxy(pki: Path, upstream: str, port: int = 0, name: str = "core") -> tuple[aio.Server, int]:
    """Start the proxy on 127.0.0.1; returns the started server and its port.

    `name` is the identity the proxy presents on both hops: the core's, so that an agency
    host accepts it exactly as it accepts the core.
    """
    channel = aio.secure_channel(upstream, channel_credentials(pki, name), options=LOOPBACK_HTTP2_OPTIONS)
    server = aio.server(handlers=[_ForwardAll(channel, DEFAULT_DEADLINE_S)], options=SERVER_OPTIONS)
    bound = server.add_secure_port(f"127.0.0.1:{port}", server_credentials(pki, name))
    await server.start()
    return server, bound


async def _main(args: argparse.Namespace) -> None:
    server, port = await serve_proxy(Path(args.pki), args.upstream, args.port)
    Path(args.port_file).write_text(str(port))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1.0)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pki", required=True, help="the network PKI folder (DIR/pki)")
    parser.add_argument("--upstream", required=True, help="host:port to forward every call to")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = a free one)")
    parser.add_argument("--port-file", required=True, help="file to write the bound port to once serving")
    asyncio.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
