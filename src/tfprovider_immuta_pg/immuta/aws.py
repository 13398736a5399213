"""AWS: STS assumed roles, RDS IAM auth tokens, IAM and Identity Center look-ups.

boto3 is imported on first use only: password-only configurations never load it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..framework.diagnostics import ProviderError
from ..framework.secrets import register

if TYPE_CHECKING:
    from .settings import AwsSettings

NO_SUCH_ENTITY_RETRY_SECONDS = 6.0  # IAM is eventually consistent right after a create
IAM_PAGE_SIZE = 1000  # the most List{Roles,Users} returns per call
# More names than this are resolved from the listing pages instead of one Get each: one page
# of 1000 roles cost as much as about 46 GetRole calls (docs/performance.md).
LIST_ABOVE = 50
ASSUME_ROLE_RETRY_SECONDS = 10.0
CREDENTIAL_REFRESH_MARGIN = timedelta(minutes=5)


class AwsClient:
    def __init__(self, settings: AwsSettings, auth_method: str) -> None:
        self.settings = settings
        self.auth_method = auth_method
        self._lock = threading.Lock()
        self._session: Any = None
        self._assumed: tuple[Any, datetime] | None = None
        self._clients: dict[str, Any] = {}

    # ------------------------------------------------------------------ sessions

    def _base_session(self) -> Any:
        if self._session is None:
            import boto3

            s = self.settings
            self._session = boto3.session.Session(
                aws_access_key_id=s.access_key_id,
                aws_secret_access_key=s.secret_access_key,
                aws_session_token=s.session_token,
                region_name=s.region,
            )
        return self._session

    def session(self) -> Any:
        """The session every call uses: the assumed role's, or the provider's keys."""
        with self._lock:
            if self.auth_method != "aws_assumed_role":
                return self._base_session()
            if (
                self._assumed is None
                or datetime.now(UTC) > self._assumed[1] - CREDENTIAL_REFRESH_MARGIN
            ):
                self._assumed = self._assume_role()
                self._clients.clear()
            return self._assumed[0]

    def _assume_role(self) -> tuple[Any, datetime]:
        import boto3

        s = self.settings
        sts = self._base_session().client("sts", endpoint_url=s.endpoint_url, region_name=s.region)
        answer = _assume_with_retry(sts, s)
        creds = answer["Credentials"]
        register(creds["SecretAccessKey"])
        register(creds["SessionToken"])
        session = boto3.session.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=s.region,
        )
        return session, creds["Expiration"]

    def client(self, service: str) -> Any:
        session = self.session()
        key = f"{service}:{id(session)}"
        with self._lock:
            if key not in self._clients:
                self._clients[key] = session.client(
                    service,
                    endpoint_url=self.settings.endpoint_url,
                    region_name=self.settings.region,
                )
            return self._clients[key]

    # ------------------------------------------------------------------ RDS IAM tokens

    def rds_token(self, hostname: str, port: int, username: str) -> str:
        """A fresh RDS IAM auth token (valid 15 minutes); minted per connection."""
        try:
            token: str = self.client("rds").generate_db_auth_token(
                DBHostname=hostname, Port=port, DBUsername=username, Region=self.settings.region
            )
        except ProviderError:
            raise
        except Exception as exc:
            raise aws_error(
                exc,
                f"Cannot create an RDS IAM auth token for {username}@{hostname}:{port}",
                "Check aws.region and the AWS credentials.",
            ) from None
        register(token)
        return token

    # ------------------------------------------------------------------ principals

    def principal_arn(self, kind: str, name_or_arn: str, retry: bool = True) -> str | None:
        """ARN of an existing IAM role or user (`kind` role|user), or None when absent."""
        return self.principal_arns(kind, [name_or_arn], retry)[name_or_arn]

    def principal_arns(
        self, kind: str, names: Iterable[str], retry: bool = True
    ) -> dict[str, str | None]:
        """For each IAM role or user name or ARN (`kind` role|user): its ARN, None if absent.

        Few names: one Get{Role,User} each; more than LIST_ABOVE: the List{Roles,Users}
        pages (1000 per call) instead, so 10,000 names cost the account's pages, not 10,000
        calls. An ARN must match exactly (same name in another path or account: absent).
        With `retry`, names not found are looked for again for a bounded time: IAM is
        eventually consistent right after a create.
        """
        iam = self.client("iam")
        title = kind.title()
        wanted = set(names)

        def get(name_or_arn: str) -> str | None:
            name = _principal_name(name_or_arn)
            try:
                answer = getattr(iam, f"get_{kind}")(**{f"{title}Name": name})
            except Exception as exc:
                if error_code(exc) == "NoSuchEntity":
                    return None
                raise self._iam_error(exc, kind, name_or_arn, f"iam:Get{title}") from None
            arn: str = answer[title]["Arn"]
            if name_or_arn.startswith("arn:") and arn != name_or_arn:
                return None  # same name, another path or account: not the principal asked for
            return arn

        def listed(missing: set[str]) -> dict[str, str | None]:
            by_name: dict[str, str] = {}
            by_arn: set[str] = set()
            pages = iam.get_paginator(f"list_{kind}s").paginate(
                PaginationConfig={"PageSize": IAM_PAGE_SIZE}
            )
            try:
                for page in pages:
                    for item in page[f"{title}s"]:
                        by_name[item[f"{title}Name"]] = item["Arn"]
                        by_arn.add(item["Arn"])
            except Exception as exc:
                raise self._iam_error(exc, kind, "", f"iam:List{title}s") from None
            return {
                n: (n if n in by_arn else None) if n.startswith("arn:") else by_name.get(n)
                for n in missing
            }

        def look(missing: set[str]) -> dict[str, str | None]:
            if len(missing) > LIST_ABOVE:
                return listed(missing)
            return {n: get(n) for n in missing}

        return _with_retry(look, wanted, retry)

    def identity_center_users_exist(self, user_ids: Iterable[str]) -> dict[str, bool]:
        """For each IAM Identity Center User ID: whether the configured identity store has it
        (one DescribeUser each, or the ListUsers pages when there are many)."""
        store_id = self.settings.identity_store_id
        client = self.client("identitystore")

        def failed(exc: Exception, user_id: str) -> ProviderError:
            return aws_error(
                exc,
                f"Cannot look up IAM Identity Center user {user_id!r}"
                if user_id
                else "Cannot list the IAM Identity Center users",
                f"Check aws.identity_store_id ({store_id}) and identitystore:DescribeUser and "
                "identitystore:ListUsers access.",
            )

        def exists(user_id: str) -> bool:
            try:
                client.describe_user(IdentityStoreId=store_id, UserId=user_id)
                return True
            except Exception as exc:
                if error_code(exc) == "ResourceNotFoundException":
                    return False
                raise failed(exc, user_id) from None

        def look(missing: set[str]) -> dict[str, str | None]:
            if len(missing) <= LIST_ABOVE:
                return {u: u if exists(u) else None for u in missing}
            known: set[str] = set()
            try:
                pages = client.get_paginator("list_users").paginate(IdentityStoreId=store_id)
                for page in pages:
                    known.update(user["UserId"] for user in page["Users"])
            except Exception as exc:
                raise failed(exc, "") from None
            return {u: u if u in known else None for u in missing}

        return {
            u: found is not None for u, found in _with_retry(look, set(user_ids), False).items()
        }

    def _iam_error(self, exc: Exception, kind: str, name: str, action: str) -> ProviderError:
        what = f"IAM {kind} {name!r}" if name else f"the IAM {kind}s"
        return aws_error(
            exc, f"Cannot look up {what}", f"The provider's AWS identity needs {action}."
        )


def _principal_name(name_or_arn: str) -> str:
    return name_or_arn.rsplit("/", 1)[-1] if name_or_arn.startswith("arn:") else name_or_arn


def _with_retry(
    look: Callable[[set[str]], dict[str, str | None]], wanted: set[str], retry: bool
) -> dict[str, str | None]:
    """`look` at every name, then (with `retry`) again at those not found, with backoff,
    until NO_SUCH_ENTITY_RETRY_SECONDS have passed."""
    deadline = time.monotonic() + (NO_SUCH_ENTITY_RETRY_SECONDS if retry else 0)
    delay = 0.25
    found = look(wanted)
    missing = {n for n, v in found.items() if v is None}
    while missing and time.monotonic() + delay <= deadline:
        time.sleep(delay)
        delay = min(delay * 2, 2.0)
        again = look(missing)
        found.update(again)
        missing = {n for n, v in again.items() if v is None}
    return found


def _assume_with_retry(sts: Any, s: AwsSettings) -> Any:
    deadline = time.monotonic() + ASSUME_ROLE_RETRY_SECONDS
    while True:
        try:
            return sts.assume_role(
                RoleArn=s.role_arn,
                RoleSessionName="terraform-provider-immuta",
                ExternalId=s.external_id,
                DurationSeconds=3600,
            )
        except Exception as exc:
            # A role created seconds ago is refused for a while (IAM propagation).
            if error_code(exc) == "AccessDenied" and time.monotonic() < deadline:
                time.sleep(1.0)
                continue
            raise aws_error(
                exc,
                f"Cannot assume role {s.role_arn}",
                "Check that the role exists, that its trust policy allows this account and "
                "requires the configured external ID (sts:ExternalId), and that the caller may "
                "call sts:AssumeRole.",
            ) from None


def error_code(exc: Exception) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code: str | None = response.get("Error", {}).get("Code")
        return code
    return None


def aws_error(exc: Exception, summary: str, hint: str) -> ProviderError:
    code = error_code(exc)
    message = getattr(exc, "response", {}).get("Error", {}).get("Message") if code else None
    reason = f"{code}: {message}" if code else f"{type(exc).__name__}: {exc}"
    return ProviderError(summary, f"AWS answered {reason}\n\n{hint}")
