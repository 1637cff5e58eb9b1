#!/usr/bin/env python3
"""Calls a running pod-server with no proto file, as grpcurl would: through
server reflection, with an independent gRPC implementation (Python grpcio).

    pip install grpcio grpcio-reflection grpcio-health-checking protobuf
    python3 scripts/reflection_check.py 127.0.0.1:50051
"""
import sys

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

address = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"
channel = grpc.insecure_channel(address)
database = ProtoReflectionDescriptorDatabase(channel)
services = list(database.get_services())
print("services:", services)
assert "infra.PodService" in services and "grpc.health.v1.Health" in services

service = DescriptorPool(database).FindServiceByName("infra.PodService")
print("methods:", [method.name for method in service.methods])
method = service.methods_by_name["ListPods"]
request_type = message_factory.GetMessageClass(method.input_type)
response_type = message_factory.GetMessageClass(method.output_type)
list_pods = channel.unary_unary(
    "/infra.PodService/ListPods",
    request_serializer=request_type.SerializeToString,
    response_deserializer=response_type.FromString,
)
response = list_pods(request_type(namespace="production"))
print("ListPods(production):", [(p.name, p.status) for p in response.pods],
      "at version", response.resource_version)

health = health_pb2_grpc.HealthStub(channel)
status = health.Check(health_pb2.HealthCheckRequest(service="infra.PodService")).status
print("health of infra.PodService:", health_pb2.HealthCheckResponse.ServingStatus.Name(status))
assert status == health_pb2.HealthCheckResponse.SERVING
