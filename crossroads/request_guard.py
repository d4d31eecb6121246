"""Requests that do not parse are INVALID_ARGUMENT saying why, not gRPC's silent UNKNOWN."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health

__all__ = ["SayingHealthServicer", "TolerantRegistration", "tolerant"]


class _Undecodable:
    def __init__(self, error: str) -> None:
        self.error = error


def _tolerant(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def parsed(raw: bytes) -> Any:
        try:
            return parse(raw)
        except DecodeError as exc:  # handed to the behaviour, which aborts with the reason
            return _Undecodable(str(exc))

    return parsed


async def _refuse(request: Any, context: Any) -> None:
    if isinstance(request, _Undecodable):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"the request does not parse: {request.error}")


def _unary(behaviour: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(behaviour):

        async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
            await _refuse(request, context)
            async for item in behaviour(request, context):
                yield item

        return stream

    async def call(request: Any, context: Any) -> Any:
        await _refuse(request, context)
        result = behaviour(request, context)
        return await result if inspect.isawaitable(result) else result

    return call


def _streaming(behaviour: Callable[..., Any]) -> Callable[..., Any]:
    async def checked(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        async for request in requests:
            await _refuse(request, context)
            yield request

    if inspect.isasyncgenfunction(behaviour):

        async def stream(requests: Any, context: Any) -> AsyncIterator[Any]:
            async for item in behaviour(checked(requests, context), context):
                yield item

        return stream

    async def call(requests: Any, context: Any) -> Any:
        return await behaviour(checked(requests, context), context)

    return call


def tolerant(handler: Any) -> Any:
    """`handler` (a grpc.RpcMethodHandler) with requests that do not parse refused as INVALID_ARGUMENT."""
    if handler is None or handler.request_deserializer is None:
        return handler
    parse = _tolerant(handler.request_deserializer)
    if handler.unary_unary:
        return handler._replace(request_deserializer=parse, unary_unary=_unary(handler.unary_unary))
    if handler.unary_stream:
        return handler._replace(request_deserializer=parse, unary_stream=_unary(handler.unary_stream))
    if handler.stream_unary:
        return handler._replace(request_deserializer=parse, stream_unary=_streaming(handler.stream_unary))
    return handler._replace(request_deserializer=parse, stream_stream=_streaming(handler.stream_stream))


class _TolerantGeneric(grpc.GenericRpcHandler):  # type: ignore[misc]  # grpc ships no type hints
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def service(self, handler_call_details: Any) -> Any:
        return tolerant(self._inner.service(handler_call_details))


class TolerantRegistration:
    """Stands in for a grpc.aio.Server while servicers register, so that their handlers are tolerant.

    `add_XServicer_to_server(servicer, TolerantRegistration(server))` registers the servicer's
    methods with requests that do not parse refused as INVALID_ARGUMENT naming the decode error
    (gRPC itself answers UNKNOWN). The wrapping happens once, at registration: unlike a server
    interceptor it costs nothing per call, and handlers that take raw bytes (the core's
    Exchange) are left as they are.
    """

    def __init__(self, server: Any) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self._server.add_generic_rpc_handlers(tuple(_TolerantGeneric(h) for h in handlers))

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        self._server.add_registered_method_handlers(service, {name: tolerant(h) for name, h in handlers.items()})


class SayingHealthServicer(health.aio.HealthServicer):  # type: ignore[misc]
    """grpc.health.v1 whose NOT_FOUND says which service is unknown (the library's says nothing)."""

    async def Check(self, request: Any, context: Any) -> Any:
        if request.service not in self._server_status:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service[:128]!r}")
        return await super().Check(request, context)
