"""What the gRPC tests share: the platform's services as descriptors, a body no message parses from,
and a reflection client that builds the answer into a descriptor pool as grpcurl does."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from ur.authorization.v1 import authorization_pb2
from ur.intake.v1 import intake_pb2
from ur.review.v1 import review_pb2

from services.common.tls import TransportSecurity, open_channel

SERVICES = {
    "ur.intake.v1.IntakeService": intake_pb2.DESCRIPTOR.services_by_name["IntakeService"],
    "ur.review.v1.ReviewService": review_pb2.DESCRIPTOR.services_by_name["ReviewService"],
    "ur.authorization.v1.AuthorizationService":
        authorization_pb2.DESCRIPTOR.services_by_name["AuthorizationService"],
}
GARBAGE = b"\xff\xff\xff\xff\xff"  # a field tag whose varint never ends


def reflect(channel: grpc.Channel, version: str, *requests: Any) -> list[Any]:
    call = channel.stream_stream(f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
                                 request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                 response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
    return list(call(iter(requests), timeout=10))


def pool_of(response: Any) -> descriptor_pool.DescriptorPool:
    """The files of a reflection answer in a fresh pool, as a client (grpcurl) builds it."""
    protos = [descriptor_pb2.FileDescriptorProto.FromString(raw)
              for raw in response.file_descriptor_response.file_descriptor_proto]
    assert protos, f"no files in the answer: {response}"
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()
    while len(added) < len(protos):
        ready = [p for p in protos if p.name not in added and all(d in added for d in p.dependency)]
        assert ready, f"the answer lacks dependencies of {[p.name for p in protos if p.name not in added]}"
        for proto in ready:
            pool.Add(proto)
            added.add(proto.name)
    return pool


def raw(channel: grpc.Channel, method: str) -> grpc.UnaryUnaryMultiCallable[bytes, bytes]:
    """``method`` called with a body of bytes, answered in bytes (no message classes either way)."""
    call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(method)
    return call


def health_of(target: str, security: TransportSecurity | None) -> grpc.StatusCode | int:
    """The server's health status for "", or the code of the failed call (a refused handshake:
    UNAVAILABLE), on a fresh channel with ``security``."""
    with open_channel(target, security) as channel:
        try:
            return int(health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status)
        except grpc.RpcError as exc:
            code: grpc.StatusCode = exc.code()
            return code
