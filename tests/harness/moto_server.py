"""An in-process moto server (AWS API mock) on 127.0.0.1:<free port>."""

from __future__ import annotations

from typing import Any

from moto.server import ThreadedMotoServer

from .hcl import Body

# Dummy credentials/region to hand to clients (boto3, or a provider subprocess via env).
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


class MotoServer:
    host = "127.0.0.1"

    def __init__(self) -> None:
        self._server: ThreadedMotoServer | None = None
        self.port: int | None = None

    def start(self) -> MotoServer:
        server = ThreadedMotoServer(ip_address=self.host, port=0, verbose=False)
        server.start()
        self._server = server
        self.port = server.get_host_and_port()[1]
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    @property
    def endpoint_url(self) -> str:
        if self.port is None:
            raise RuntimeError("moto server not started")
        return f"http://{self.host}:{self.port}"

    def aws_block(self, **settings: Any) -> Body:
        """A provider block's `aws { ... }` reaching this server with the dummy keys;
        `settings` add to them or replace them."""
        block = Body(
            region=AWS_ENV["AWS_REGION"],
            access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
            secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
            endpoint_url=self.endpoint_url,
        )
        block.update(settings)
        return block

    def env(self) -> dict[str, str]:
        """Environment for a subprocess that should talk to this server."""
        return {**AWS_ENV, "AWS_ENDPOINT_URL": self.endpoint_url}

    def client(self, service: str, **kwargs):
        import boto3

        params = {
            "endpoint_url": self.endpoint_url,
            "region_name": AWS_ENV["AWS_DEFAULT_REGION"],
            "aws_access_key_id": AWS_ENV["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        }
        params.update(kwargs)
        return boto3.client(service, **params)

    def assumed_role(self, access_key_id: str):
        """moto's record (role_arn, external_id, secret_access_key, session_token) of the
        AssumeRole call that returned `access_key_id`; None if there was none.

        The server runs in this process, so its random temporary credentials are readable
        here (an RDS test front uses them to verify token signatures).
        """
        from moto.sts.models import sts_backends

        for by_partition in list(sts_backends.values()):
            for backend in list(by_partition.values()):
                for role in list(backend.assumed_roles):
                    if role.access_key_id == access_key_id:
                        return role
        return None

    def reset(self) -> None:
        """Wipe all moto state (POST /moto-api/reset)."""
        import urllib.request

        req = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=10):
            pass

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
