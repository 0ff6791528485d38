"""Prometheus: the /metrics HTTP server and the gRPC server metrics every service exports."""

from __future__ import annotations

import logging
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, start_http_server

logger = logging.getLogger(__name__)

# Labels are bounded: service and method come from the registered proto services, code from grpc.StatusCode.
GRPC_SERVER_STARTED = Counter(
    "vigil_grpc_server_started_total",
    "gRPC calls started on the server, per method.",
    ["grpc_service", "grpc_method", "grpc_type"],
)
GRPC_SERVER_HANDLED = Counter(
    "vigil_grpc_server_handled_total",
    "gRPC calls completed on the server, per method and status code.",
    ["grpc_service", "grpc_method", "grpc_type", "grpc_code"],
)
GRPC_SERVER_HANDLING_SECONDS = Histogram(
    "vigil_grpc_server_handling_seconds",
    "Time the server took to handle a gRPC call (until the last response), per method.",
    ["grpc_service", "grpc_method", "grpc_type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

_servers: dict[int, tuple[WSGIServer, threading.Thread]] = {}


def split_method(full_method: str) -> tuple[str, str]:
    """("vigil.registry.v1.RegistryService", "GetDevice") from "/vigil.registry.v1.RegistryService/GetDevice"."""
    service, _, method = full_method.lstrip("/").partition("/")
    return service, method


def start_metrics_server(port: int, host: str = "0.0.0.0", registry: CollectorRegistry = REGISTRY) -> int:
    """Serve /metrics over HTTP on host:port in a daemon thread; returns the bound port (port 0 picks one)."""
    server, thread = start_http_server(port, addr=host, registry=registry)
    bound = server.server_port
    _servers[bound] = (server, thread)
    logger.info("metrics served", extra={"metrics_port": bound, "metrics_host": host})
    return bound


def stop_metrics_server(port: int) -> None:
    """Stop a server started by start_metrics_server (tests; a service's server lives as long as it does)."""
    entry = _servers.pop(port, None)
    if entry is None:
        return
    server, thread = entry
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
