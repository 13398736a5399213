"""The plugin server's thread pools: control calls answer while every quick worker is busy.

A protocol-room test: the resource here is a stand-in whose read blocks until released, so
the quick lane can be filled on purpose. No PostgreSQL or Terraform is involved.
"""

from __future__ import annotations

import threading
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tfprovider_immuta_pg.framework.diagnostics import Diagnostics
from tfprovider_immuta_pg.framework.provider import Context, Provider, Resource
from tfprovider_immuta_pg.framework.schema import Attribute, Block, Schema
from tfprovider_immuta_pg.framework.types import STRING
from tfprovider_immuta_pg.protocol import plugin
from tfprovider_immuta_pg.protocol.convert import value_to_proto
from tfprovider_immuta_pg.protocol.gen import tfplugin6_pb2 as pb
from tfprovider_immuta_pg.protocol.gen import tfplugin6_pb2_grpc

SCHEMA = Schema(Block(attributes={"id": Attribute(STRING, required=True)}))


class Gate(Resource):
    type_name = "test_gate"
    schema = SCHEMA

    def __init__(self) -> None:
        self.release = threading.Event()
        self.reading = threading.Semaphore(0)

    def read(self, state: dict, ctx: Context) -> dict | None:
        self.reading.release()
        self.release.wait(30)
        return state

    def create(self, planned: dict, ctx: Context) -> dict:
        return planned


class GateProvider(Provider):
    schema = Schema(Block())
    data_sources: dict = {}
    functions: dict = {}

    def __init__(self, gate: Gate) -> None:
        self.resources = {"test_gate": gate}

    def configure(self, config: dict, diags: Diagnostics) -> None:
        pass


@pytest.fixture
def served():
    gate = Gate()
    server = plugin.PluginServer(lambda: GateProvider(gate), client_cert_pem="")
    server.start()
    channel = grpc.insecure_channel(f"unix:{server.socket_path}")
    try:
        yield gate, channel
    finally:
        gate.release.set()
        channel.close()
        server.stop()


def test_stop_and_health_answer_while_the_quick_lane_is_full(served) -> None:
    gate, channel = served
    stub = tfplugin6_pb2_grpc.ProviderStub(channel)
    state = value_to_proto({"id": "x"}, SCHEMA.value_type)
    read = pb.ReadResource.Request(type_name="test_gate", current_state=state)
    with futures.ThreadPoolExecutor(plugin.QUICK_WORKERS + 3) as callers:
        reads = [
            callers.submit(stub.ReadResource, read, timeout=30)
            for _ in range(plugin.QUICK_WORKERS + 3)
        ]
        for _ in range(plugin.QUICK_WORKERS):  # every quick worker is now inside a read
            assert gate.reading.acquire(timeout=10)
        assert not gate.reading.acquire(timeout=0.3)  # and the other reads wait their turn

        assert stub.StopProvider(pb.StopProvider.Request(), timeout=5).Error == ""
        health = health_pb2_grpc.HealthStub(channel)
        check = health_pb2.HealthCheckRequest(service="plugin")
        assert health.Check(check, timeout=5).status == health_pb2.HealthCheckResponse.SERVING
        # The long lane is not held up by the quick one either.
        apply = pb.ApplyResourceChange.Request(
            type_name="test_gate",
            prior_state=value_to_proto(None, SCHEMA.value_type),
            planned_state=state,
            config=state,
        )
        applied = stub.ApplyResourceChange(apply, timeout=5)
        assert not applied.diagnostics
        assert applied.new_state.msgpack == state.msgpack

        gate.release.set()
        assert all(r.result(timeout=10).new_state.msgpack == state.msgpack for r in reads)


def test_every_provider_method_has_a_lane() -> None:
    lanes = plugin.Lanes()
    names = [m.name for m in pb.DESCRIPTOR.services_by_name["Provider"].methods]
    assert len(names) > 15
    pools = {name: lanes.pool_for(f"/tfplugin6.Provider/{name}") for name in names}
    assert pools["StopProvider"] is lanes.control
    assert pools["ApplyResourceChange"] is lanes.long
    assert pools["ReadResource"] is lanes.quick
    assert pools["PlanResourceChange"] is lanes.quick
    named = plugin.CONTROL_METHODS | plugin.LONG_METHODS
    assert named <= {f"/tfplugin6.Provider/{n}" for n in names}  # no lane names a ghost


def test_go_plugin_methods_are_routed_and_others_are_not() -> None:
    server = plugin.PluginServer(lambda: GateProvider(Gate()), client_cert_pem="")
    server.start()
    try:
        assert server.route(plugin.SHUTDOWN).pool is None  # inline: it only sets a flag
        assert server.route(plugin.HEALTH_CHECK).pool is None
        assert server.route(plugin.STDIO).hold
        assert server.route("/tfplugin6.Provider/ReadResource").pool is server.lanes.quick
        assert server.route("/plugin.GRPCBroker/StartStream") is None  # UNIMPLEMENTED
    finally:
        server.stop()


def test_health_check_answers_for_the_plugin_and_the_server_only(served) -> None:
    _, channel = served
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("plugin", ""):  # go-plugin asks for "plugin"; "" is the whole server
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as caught:
        health.Check(health_pb2.HealthCheckRequest(service="x" * 200), timeout=5)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert caught.value.details() == f"unknown service {'x' * 200!r}"  # a 2-byte length


def test_provider_calls_report_a_failed_load_and_unknown_methods() -> None:
    def broken_factory() -> Provider:
        raise RuntimeError("schema module missing")

    server = plugin.PluginServer(broken_factory, client_cert_pem="")
    server.start()
    channel = grpc.insecure_channel(f"unix:{server.socket_path}")
    try:
        stub = tfplugin6_pb2_grpc.ProviderStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetMetadata(pb.GetMetadata.Request(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.INTERNAL
        assert caught.value.details() == "provider failed to load: schema module missing"
    finally:
        channel.close()
        server.stop()


def test_an_unknown_provider_method_is_unimplemented(served) -> None:
    _, channel = served
    call = channel.unary_unary("/tfplugin6.Provider/NoSuchCall")
    with pytest.raises(grpc.RpcError) as caught:
        call(b"", timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert caught.value.details() == "unknown method /tfplugin6.Provider/NoSuchCall"
