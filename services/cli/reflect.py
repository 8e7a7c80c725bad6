"""A generic gRPC client driven only by server reflection: no generated code.

    python -m services.cli.reflect list 127.0.0.1:50051
    python -m services.cli.reflect describe 127.0.0.1:50051 ur.intake.v1.IntakeService
    python -m services.cli.reflect call 127.0.0.1:50051 ur.intake.v1.IntakeService/GetRequest '{"request_id": "..."}' \
        --token TOKEN
    python -m services.cli.reflect health 127.0.0.1:50051 [--service ur.intake.v1.IntakeService]

It is how an operator (or a tool like grpcurl) explores a running service. Reflection and health
need no credentials; a call sends ``--token`` as its bearer token. TLS comes from the
UR_GRPC_TLS_* settings, as for urctl.

``health`` is the probe of the Kubernetes manifests and compose (a gRPC probe cannot speak TLS):
exit status 0 when the service (or the whole server, "") is SERVING, 1 when it is not or does not
answer within ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from services.common import tls
from services.common.errors import ConfigurationError
from services.common.tls import TransportSecurity, open_channel


class ReflectionClient:
    def __init__(self, target: str, security: TransportSecurity | None = None, token: str | None = None) -> None:
        self._channel = open_channel(target, security, token=token)
        self._db = ProtoReflectionDescriptorDatabase(self._channel)
        self._pool = descriptor_pool.DescriptorPool(self._db)

    def services(self) -> list[str]:
        return sorted(self._db.get_services())

    def methods(self, service: str) -> list[tuple[str, str, str]]:
        desc = self._pool.FindServiceByName(service)
        return [(m.name, m.input_type.full_name, m.output_type.full_name) for m in desc.methods]

    def call(self, full_method: str, body: dict[str, Any], timeout_s: float = 10.0) -> dict[str, Any]:
        service, _, method = full_method.rpartition("/")
        desc = self._pool.FindServiceByName(service).FindMethodByName(method)
        request_cls = message_factory.GetMessageClass(desc.input_type)
        response_cls = message_factory.GetMessageClass(desc.output_type)
        request = json_format.ParseDict(body, request_cls())
        rpc: Any = self._channel.unary_unary(f"/{service}/{method}", request_serializer=lambda m: m.SerializeToString(),
                                        response_deserializer=response_cls.FromString)
        response = rpc(request, timeout=timeout_s)
        return json_format.MessageToDict(response, preserving_proto_field_name=True)

    def close(self) -> None:
        self._channel.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reflect", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list")
    p_list.add_argument("target")
    p_desc = sub.add_parser("describe")
    p_desc.add_argument("target")
    p_desc.add_argument("service")
    p_call = sub.add_parser("call")
    p_call.add_argument("target")
    p_call.add_argument("method", help="package.Service/Method")
    p_call.add_argument("body", nargs="?", default="{}", help="request as JSON")
    p_call.add_argument("--token", default=None, help="bearer token the call sends")
    p_health = sub.add_parser("health", help="exit 0 when SERVING (a liveness/readiness probe)")
    p_health.add_argument("target")
    p_health.add_argument("--service", default="", help="health name (default \"\": the whole server)")
    p_health.add_argument("--timeout", type=float, default=3.0, metavar="SECONDS")
    args = parser.parse_args(argv)
    try:
        security = tls.for_clients()
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "health":
        return health(args.target, args.service, args.timeout, security)
    client = ReflectionClient(args.target, security, getattr(args, "token", None))
    try:
        if args.command == "list":
            print("\n".join(client.services()))
        elif args.command == "describe":
            for name, request, response in client.methods(args.service):
                print(f"rpc {name}({request}) returns ({response})")
        else:
            print(json.dumps(client.call(args.method, json.loads(args.body)), indent=2))
    except grpc.RpcError as exc:
        print(f"{exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    except (KeyError, json.JSONDecodeError, json_format.ParseError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        client.close()
    return 0


def health(target: str, service: str, timeout_s: float, security: TransportSecurity | None) -> int:
    """The probe: 0 when ``service`` is SERVING at ``target``, else 1 (with why on stderr)."""
    with open_channel(target, security) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                              timeout=timeout_s)
        except grpc.RpcError as exc:
            print(f"{target}: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        print(f"{target}: {service or 'the server'} is {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
