"""How the provider reaches PostgreSQL and AWS: its settings, credentials, pool and AWS client.

One `Access` lives for the whole provider process; every resource and data source holds it.
Nothing here connects before an operation asks for a connection.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, TypeVar

from ..framework.diagnostics import ProviderError
from ..framework.provider import Context
from ..framework.secrets import register
from ..framework.values import UNKNOWN
from . import rules
from .pg import ConnectionPool, Credentials, Target
from .settings import Settings

if TYPE_CHECKING:
    import psycopg

    from .aws import AwsClient

T = TypeVar("T")


class Access:
    def __init__(self) -> None:
        self._settings: Settings | None = None
        self.pool = ConnectionPool()
        self.current_stores: set[Target] = set()  # Immuta databases whose store is up to date
        self._aws: AwsClient | None = None

    def configure(self, settings: Settings) -> None:
        for secret in (
            settings.password,
            settings.aws.secret_access_key,
            settings.aws.session_token,
            settings.aws.external_id,
        ):
            if isinstance(secret, str):
                register(secret)
        self._settings = settings
        self._aws = None

    @property
    def settings_if_configured(self) -> Settings | None:
        """The provider block's settings; None until Terraform configured the provider."""
        return self._settings

    @property
    def settings(self) -> Settings:
        """The provider block's settings; fails clearly when Terraform did not configure it."""
        if self._settings is None:
            raise ProviderError(
                "Provider not configured",
                "Terraform did not configure the immuta provider before using it.",
            )
        return self._settings

    def credentials(self) -> Credentials:
        """The provider's PostgreSQL credentials; fails clearly when they are not usable."""
        settings = self.settings
        unknown = [n for n, v in vars(settings).items() if v is UNKNOWN]
        if unknown:
            raise ProviderError(
                "Provider configuration not known yet",
                "These provider arguments depend on values known only after apply: "
                + ", ".join(unknown)
                + ". Apply their sources first (-target) or set them directly.",
            )
        username = settings.username
        if settings.auth_method == "aws_assumed_role" and not username:
            username = rules.role_name_from_arn(settings.aws.role_arn or "")
        if not username:
            raise ProviderError(
                "Missing PostgreSQL username",
                "Set username in the provider block or the PGUSER environment variable.",
                ("username",),
            )
        signer = None
        if settings.auth_method == "password":
            password = settings.password

            def secret(target: Target) -> str | None:
                return password
        else:
            aws_settings = settings.aws
            signer = f"region {aws_settings.region}, " + (
                f"assumed role {aws_settings.role_arn}"
                if settings.auth_method == "aws_assumed_role"
                else f"access key {aws_settings.access_key_id}"
            )
            aws = self.aws()
            login = username

            def secret(target: Target) -> str | None:
                return aws.rds_token(target.hostname, target.port, login)

        return Credentials(
            username=username,
            password=secret,
            sslmode=settings.sslmode,
            sslrootcert=settings.sslrootcert,
            connect_timeout=settings.connect_timeout,
            key=f"{settings.auth_method}:{username}:{id(settings)}",
            iam_signer=signer,
        )

    def aws(self) -> AwsClient:
        """The AWS client for this provider configuration (boto3 loads on first use)."""
        if self._aws is None:
            from .aws import AwsClient

            settings = self.settings
            self._aws = AwsClient(settings.aws, settings.auth_method)
        return self._aws

    def connect(self, target: Target, ctx: Context) -> AbstractContextManager[psycopg.Connection]:
        """A pooled connection to `target` with the provider's credentials (no retries:
        prefer `run`)."""
        return self.pool.connection(target, self.credentials(), ctx)

    def run(
        self,
        target: Target,
        ctx: Context,
        work: Callable[[psycopg.Connection], T],
        doing: str = "",
    ) -> T:
        """`work(connection)` on `target`, retried whole after a transient failure (see
        `pg`); `doing` names the work in diagnostics ("reading connection 'X'")."""
        return self.pool.run(target, self.credentials(), ctx, work, doing)
