"""A raw one-hop gRPC proxy: the baseline the crossroads core is measured against.

It accepts any unary call over mutual TLS and forwards the request bytes, untouched and
unparsed, to the same method on one upstream address over mutual TLS, then returns the
upstream's reply bytes. It authenticates both hops like the core does, but checks nothing,
routes nothing and audits nothing: whatever the core costs beyond this is the price of the
crossroads' work.

Run: `python -m testbed.proxy --pki DIR/pki --upstream 127.0.0.1:PORT --port-file FILE` (`command`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
from grpc import aio

from crossroads.forwarder import LOOPBACK_HTTP2_OPTIONS
from crossroads.pki import channel_credentials, server_credentials
from crossroads.readiness import EXIT_WITH_PARENT, ServerCommand, StopSignal, write_port_file
from testbed import processes

DEFAULT_DEADLINE_S = 5.0
START_TIMEOUT_S = 60.0  # a ceiling for a loaded machine, not a target
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


def command(pki: Path, upstream: str, port_file: Path) -> ServerCommand:
    """How a starter runs the proxy as a child process: `python -m testbed.proxy` in front of
    `upstream`, writing its port to `port_file` once serving, stopping by itself if its starter dies."""
    args = ("--pki", str(pki), "--upstream", upstream, "--port-file", str(port_file), EXIT_WITH_PARENT)
    return ServerCommand("proxy", "testbed.proxy", args, port_file)


@contextlib.contextmanager
def running(pki: Path, upstream: str, folder: Path, timeout_s: float = START_TIMEOUT_S) -> Iterator[tuple[str, int]]:
    """The proxy in front of `upstream` in a process of its own (testbed.processes), its port file
    and log in `folder`: yields its address and pid once it serves, stops it on leaving.
    testbed.processes.ChildError, quoting its log, if it does not serve within `timeout_s`."""
    server = command(pki, upstream, folder / "proxy.port")
    with processes.running_server(server, folder / "proxy.log", timeout_s) as child:
        yield str(child.address), child.pid


async def _main(args: argparse.Namespace) -> None:
    stopping = StopSignal(exit_with_parent=args.exit_with_parent)  # before the port file says "serving"
    server, port = await serve_proxy(Path(args.pki), args.upstream, args.port)
    write_port_file(Path(args.port_file), port)
    await stopping.wait()
    await server.stop(1.0)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pki", required=True, help="the network PKI folder (DIR/pki)")
    parser.add_argument("--upstream", required=True, help="host:port to forward every call to")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = a free one)")
    parser.add_argument("--port-file", required=True, help="file to write the bound port to once serving")
    parser.add_argument(EXIT_WITH_PARENT, action="store_true", help="stop when the starting process dies")
    asyncio.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
