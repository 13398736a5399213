"""The IAM and PostgreSQL work behind immuta_aws_service_principal (imported lazily)."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from ...framework.diagnostics import ProviderError
from ...framework.provider import Context
from ...framework.secrets import register
from ...framework.values import UNKNOWN
from .. import arns, policies
from ..access import Access
from ..aws import NO_SUCH_ENTITY_RETRY_SECONDS, aws_error, error_code
from ..errors import postgres_error
from ..pg import Target
from .external_id import external_id_checker, seal_external_id
from .schema import DEFAULT_DATABASE, TYPE_NAME, ServicePrincipalState, default_policy_name

RDS_IAM = "rds_iam"
MAX_POLICY_VERSIONS = 5
LOCK_KEY = "immuta_aws_service_principal"  # serialises GRANT/REVOKE/CREATE ROLE per server
T = TypeVar("T")
GRANT_HINT = (
    "The provider's PostgreSQL user needs CREATEROLE (to create the login role) and the "
    "ADMIN OPTION on rds_iam (on RDS and Aurora, the master user has both through "
    "rds_superuser)."
)


@dataclass(frozen=True)
class Spec:
    """Every input of the service principal, resolved (defaults applied)."""

    role_name: str
    path: str
    policy_name: str
    region: str
    aws_account_id: str
    db_resource_id: str
    db_username: str
    immuta_account_id: str
    hostname: str
    port: int
    database: str

    @property
    def target(self) -> Target:
        return Target(self.hostname, self.port, self.database)

    @property
    def db_user_arn(self) -> str:
        return arns.rds_db_user_arn(
            self.region, self.aws_account_id, self.db_resource_id, self.db_username
        )

    @property
    def policy_document(self) -> dict:
        return policies.connect_policy(self.db_user_arn)

    def trust_policy(self, external_id: str) -> dict:
        return policies.trust_policy(
            self.immuta_account_id, external_id, arns.partition(self.region)
        )


def _known(value: Any) -> Any:
    return None if value is UNKNOWN else value


class PrincipalWorker:
    def __init__(self, access: Access, ctx: Context) -> None:
        self.access = access
        self.ctx = ctx

    @property
    def iam(self) -> Any:
        return self.access.aws().client("iam")

    # ------------------------------------------------------------------ inputs

    def _spec(self, values: dict[str, Any]) -> Spec:
        role = values["role_name"]
        region = _known(values.get("region"))
        if region is None:
            settings = self.access.settings_if_configured
            region = settings.aws.region if settings is not None else None
        if not isinstance(region, str):
            raise ProviderError(
                "Missing region",
                "Set region or the provider's aws.region (AWS_REGION).",
                ("region",),
            )
        return Spec(
            role_name=role,
            path=_known(values.get("path")) or "/",
            policy_name=_known(values.get("policy_name")) or default_policy_name(role),
            region=region,
            aws_account_id=values["aws_account_id"],
            db_resource_id=values["db_resource_id"],
            db_username=_known(values.get("db_username")) or role,
            immuta_account_id=values["immuta_account_id"],
            hostname=values["hostname"],
            port=int(values.get("port") or 5432),
            database=_known(values.get("database")) or DEFAULT_DATABASE,
        )

    def _external_id(self) -> str:
        config = self.ctx.config or {}
        value = config.get("external_id") if isinstance(config, dict) else None
        if not isinstance(value, str):
            raise ProviderError(
                "External ID not known",
                "external_id is write-only: Terraform sends it only with the configuration, "
                "and it must be known when applying. Set it (for example from a sensitive or "
                "ephemeral variable).",
                ("external_id",),
            )
        register(value)
        return value

    def _state(self, spec: Spec, role_arn: str, policy_arn: str) -> ServicePrincipalState:
        return ServicePrincipalState(
            role_name=spec.role_name,
            path=spec.path,
            policy_name=spec.policy_name,
            region=spec.region,
            aws_account_id=spec.aws_account_id,
            db_resource_id=spec.db_resource_id,
            db_username=spec.db_username,
            immuta_account_id=spec.immuta_account_id,
            external_id=None,
            hostname=spec.hostname,
            port=spec.port,
            database=spec.database,
            id=spec.role_name,
            role_arn=role_arn,
            policy_arn=policy_arn,
            db_user_arn=spec.db_user_arn,
            policy_document=policies.dumps(spec.policy_document),
            trust_policy=policies.dumps(spec.trust_policy(policies.EXTERNAL_ID_CONFIGURED)),
            policy_attached=True,
            rds_iam_granted=True,
        )

    # ------------------------------------------------------------------ create

    def create(self, planned: dict[str, Any]) -> ServicePrincipalState:
        external_id = self._external_id()
        spec = self._spec(planned)
        self._check_server(spec.target)
        undo: list[Callable[[], None]] = []
        try:
            policy_arn, adopted = self._create_policy(spec)
            if not adopted:
                undo.append(lambda: self._delete_policy(policy_arn))
            role_arn = self._create_role(spec, external_id)
            undo.append(lambda: self._delete_role(spec.role_name))
            self._attach(spec.role_name, policy_arn)
            undo.append(lambda: self._detach(spec.role_name, policy_arn))
            self._grant(spec.target, spec.db_username)
        except BaseException:
            for step in reversed(undo):  # leave nothing half-made behind
                with suppress(Exception):
                    step()
            raise
        self.ctx.private = seal_external_id(external_id)
        return self._state(spec, role_arn, policy_arn)

    def _create_policy(self, spec: Spec) -> tuple[str, bool]:
        """(ARN, adopted): a new policy, or the leftover of a role deleted outside Terraform."""
        text = policies.dumps(spec.policy_document)
        try:
            answer = self._retry(
                lambda: self.iam.create_policy(
                    PolicyName=spec.policy_name,
                    Path=spec.path,
                    PolicyDocument=text,
                    Description=f"rds-db:connect as {spec.db_username} for IAM role "
                    f"{spec.role_name} (Immuta service principal; managed by Terraform)",
                )
            )
            created: str = answer["Policy"]["Arn"]
            return created, False
        except Exception as exc:
            if error_code(exc) != "EntityAlreadyExists":
                raise self._aws_error(
                    exc,
                    f"Cannot create IAM policy {spec.policy_name!r}",
                    "The provider's AWS identity needs iam:CreatePolicy.",
                    ("policy_name",),
                ) from None
        arn = self._policy_arn_by_name(spec)
        document = self._default_document(arn) if arn else None
        resources = policies.connect_resources(document) if document is not None else []
        if arn is None or not resources or not _connect_only(document):
            raise ProviderError(
                f"IAM policy {spec.policy_name!r} already exists",
                f"A policy named {spec.policy_name!r} exists at path {spec.path} and is not an "
                "rds-db:connect policy this resource can take over. Choose another "
                "policy_name, or delete or rename the existing policy.",
                ("policy_name",),
            )
        # The policy of a service principal whose role was deleted outside Terraform: reuse.
        self._converge_policy_document(arn, spec)
        return arn, True

    def _create_role(self, spec: Spec, external_id: str) -> str:
        try:
            answer = self._retry(
                lambda: self.iam.create_role(
                    RoleName=spec.role_name,
                    Path=spec.path,
                    AssumeRolePolicyDocument=policies.dumps(spec.trust_policy(external_id)),
                    Description="Immuta service principal (managed by Terraform)",
                ),
                principal=True,
            )
        except Exception as exc:
            if error_code(exc) == "EntityAlreadyExists":
                raise ProviderError(
                    f"IAM role {spec.role_name!r} already exists",
                    f"An IAM role named {spec.role_name!r} exists already. To manage it with "
                    f"Terraform, import it: terraform import {TYPE_NAME}.<name> "
                    f"{spec.role_name} (or an import block with id = {spec.role_name!r}); or "
                    "choose another role_name.",
                    ("role_name",),
                ) from None
            raise self._aws_error(
                exc,
                f"Cannot create IAM role {spec.role_name!r}",
                "The provider's AWS identity needs iam:CreateRole. A trust policy IAM refuses "
                f"usually means immuta_account_id ({spec.immuta_account_id}) is not an "
                "existing AWS account.",
                ("role_name",),
            ) from None
        role_arn: str = answer["Role"]["Arn"]
        return role_arn

    # ------------------------------------------------------------------ read

    def read(self, state: ServicePrincipalState) -> ServicePrincipalState | None:
        role = self._get_role(state["role_name"])
        if role is None:
            return None  # deleted outside Terraform: the next plan creates it again
        new = state.copy()
        new["role_arn"] = role["Arn"]
        new["path"] = role.get("Path") or state.get("path")
        new["id"] = state["role_name"]
        live_trust = self._parse(role.get("AssumeRolePolicyDocument"), role["Arn"])
        masked = policies.mask_external_ids(live_trust, external_id_checker(self.ctx.private))
        new["trust_policy"] = _same_or_live(state.get("trust_policy"), masked)
        policy_arn = state.get("policy_arn")
        document = self._default_document(policy_arn) if policy_arn else None
        new["policy_document"] = (
            None if document is None else _same_or_live(state.get("policy_document"), document)
        )
        new["policy_attached"] = bool(policy_arn) and policy_arn in self._attached(
            state["role_name"]
        )
        spec_target = _recorded_server(state)
        if spec_target is not None:
            username = state.get("db_username") or state["role_name"]
            new["rds_iam_granted"] = self._is_granted(spec_target, username)
        else:
            new["rds_iam_granted"] = None  # imported: the server is not known yet
        return new

    # ------------------------------------------------------------------ update

    def update(
        self, prior: ServicePrincipalState, planned: dict[str, Any]
    ) -> ServicePrincipalState:
        external_id = self._external_id()
        spec = self._spec(planned)
        self._check_server(spec.target)
        role = self._get_role(spec.role_name)
        if role is None:
            raise ProviderError(
                f"IAM role {spec.role_name!r} disappeared",
                "The role was deleted while this apply ran. Run terraform apply again: the "
                "refresh notices and creates it.",
                ("role_name",),
            )
        policy_arn = self._converge_policy(prior, spec)
        self._converge_trust(role, spec, external_id)
        old_user, old_host = prior.get("db_username"), prior.get("hostname")
        self._grant(spec.target, spec.db_username)
        if old_user and old_host and old_user != spec.db_username:
            old = Target(old_host, int(prior.get("port") or 5432), prior.get("database") or "")
            self._revoke(old if old.database else spec.target, old_user)
        self.ctx.private = seal_external_id(external_id)
        return self._state(spec, role["Arn"], policy_arn)

    def _converge_policy(self, prior: ServicePrincipalState, spec: Spec) -> str:
        """The policy named by `spec`, existing, current and attached; returns its ARN."""
        old_arn = prior.get("policy_arn")
        renamed = prior.get("policy_name") != spec.policy_name
        arn = None if renamed else old_arn
        if arn is not None and self._default_document(arn) is None:
            arn = None  # deleted outside Terraform
        if arn is None:
            arn, _ = self._create_policy(spec)
        else:
            self._converge_policy_document(arn, spec)
        if arn not in self._attached(spec.role_name):
            self._attach(spec.role_name, arn)
        if renamed and old_arn and old_arn != arn:
            self._detach(spec.role_name, old_arn)
            self._delete_policy(old_arn)
        return arn

    def _converge_policy_document(self, arn: str, spec: Spec) -> None:
        wanted = spec.policy_document
        if policies.same(self._default_document(arn), wanted):
            return
        iam = self.iam
        try:
            versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
            old = sorted(
                (v for v in versions if not v["IsDefaultVersion"]),
                key=lambda v: v.get("CreateDate") or 0,
            )
            if len(versions) >= MAX_POLICY_VERSIONS and old:
                iam.delete_policy_version(PolicyArn=arn, VersionId=old[0]["VersionId"])
            iam.create_policy_version(
                PolicyArn=arn, PolicyDocument=policies.dumps(wanted), SetAsDefault=True
            )
        except Exception as exc:
            raise self._aws_error(
                exc,
                f"Cannot update IAM policy {arn}",
                "The provider's AWS identity needs iam:ListPolicyVersions, "
                "iam:DeletePolicyVersion and iam:CreatePolicyVersion on it.",
            ) from None

    def _converge_trust(self, role: dict, spec: Spec, external_id: str) -> None:
        wanted = spec.trust_policy(external_id)
        live = self._parse(role.get("AssumeRolePolicyDocument"), role["Arn"])
        if policies.same(live, wanted):
            return
        try:
            self._retry(
                lambda: self.iam.update_assume_role_policy(
                    RoleName=spec.role_name, PolicyDocument=policies.dumps(wanted)
                ),
                principal=True,
            )
        except Exception as exc:
            raise self._aws_error(
                exc,
                f"Cannot update the trust policy of IAM role {role['Arn']}",
                "The provider's AWS identity needs iam:UpdateAssumeRolePolicy.",
            ) from None

    # ------------------------------------------------------------------ delete

    def delete(self, state: ServicePrincipalState) -> None:
        role_name = state["role_name"]
        target = _recorded_server(state)
        if target is not None:
            self._revoke(target, state.get("db_username") or role_name)
        policy_arn = state.get("policy_arn")
        if policy_arn:
            self._detach(role_name, policy_arn)
            self._delete_policy(policy_arn)
        self._delete_role(role_name)

    def _detach(self, role_name: str, policy_arn: str) -> None:
        try:
            self.iam.detach_role_policy(RoleName=role_name, PolicyArn=policy_arn)
        except Exception as exc:
            if error_code(exc) != "NoSuchEntity":
                raise self._aws_error(
                    exc,
                    f"Cannot detach IAM policy {policy_arn} from role {role_name!r}",
                    "The provider's AWS identity needs iam:DetachRolePolicy.",
                ) from None

    def _delete_policy(self, arn: str) -> None:
        iam = self.iam
        try:
            for version in iam.list_policy_versions(PolicyArn=arn)["Versions"]:
                if not version["IsDefaultVersion"]:
                    iam.delete_policy_version(PolicyArn=arn, VersionId=version["VersionId"])
            iam.delete_policy(PolicyArn=arn)
        except Exception as exc:
            if error_code(exc) == "NoSuchEntity":
                return
            hint = "The provider's AWS identity needs iam:DeletePolicy and iam:DeletePolicyVersion."
            if error_code(exc) == "DeleteConflict":
                hint = (
                    "The policy is still attached to other roles, users or groups; detach it "
                    "from them (aws iam list-entities-for-policy --policy-arn " + arn + ")."
                )
            raise self._aws_error(exc, f"Cannot delete IAM policy {arn}", hint) from None

    def _delete_role(self, role_name: str) -> None:
        try:
            self.iam.delete_role(RoleName=role_name)
        except Exception as exc:
            code = error_code(exc)
            if code == "NoSuchEntity":
                return
            hint = "The provider's AWS identity needs iam:DeleteRole."
            if code == "DeleteConflict":
                hint = (
                    "Something not managed by this resource still uses the role: "
                    + self._role_dependents(role_name)
                    + ". Remove it, then run terraform destroy again."
                )
            raise self._aws_error(exc, f"Cannot delete IAM role {role_name!r}", hint) from None

    def _role_dependents(self, role_name: str) -> str:
        found = []
        with suppress(Exception):
            found += [
                f"attached policy {p['PolicyArn']}"
                for p in self.iam.list_attached_role_policies(RoleName=role_name)[
                    "AttachedPolicies"
                ]
            ]
            found += [
                f"inline policy {n!r}"
                for n in self.iam.list_role_policies(RoleName=role_name)["PolicyNames"]
            ]
            found += [
                f"instance profile {p['InstanceProfileName']!r}"
                for p in self.iam.list_instance_profiles_for_role(RoleName=role_name)[
                    "InstanceProfiles"
                ]
            ]
        return ", ".join(found) or "policies or instance profiles"

    # ------------------------------------------------------------------ import

    def import_state(self, role_name: str) -> ServicePrincipalState:
        problem = arns.role_name_problem(role_name)
        if problem:
            raise ProviderError(
                "Invalid import ID", f"Import {TYPE_NAME} by IAM role name. {problem}"
            )
        role = self._get_role(role_name)
        if role is None:
            raise ProviderError(
                f"Cannot import {TYPE_NAME}",
                f"No IAM role named {role_name!r} exists (names are case-sensitive).",
            )
        trust = self._parse(role.get("AssumeRolePolicyDocument"), role["Arn"])
        account = policies.trusted_account(trust)
        if account is None:
            raise ProviderError(
                f"Cannot import {TYPE_NAME}",
                f"The trust policy of {role['Arn']} trusts no AWS account root "
                "(arn:aws:iam::ACCOUNT_ID:root); it is not an Immuta service principal.",
            )
        arn, document, user_arn = self._find_connect_policy(role)
        parsed = arns.parse_rds_db_user_arn(user_arn)
        if parsed is None:
            raise ProviderError(
                f"Cannot import {TYPE_NAME}",
                f"Policy {arn} allows rds-db:connect on {user_arn!r}, which is not an rds-db "
                "ARN for one database user (arn:aws:rds-db:REGION:ACCOUNT:dbuser:ID/USER).",
            )
        region, account_id, resource_id, username = parsed
        policy = self.iam.get_policy(PolicyArn=arn)["Policy"]
        return ServicePrincipalState(
            role_name=role_name,
            path=role.get("Path") or "/",
            policy_name=policy["PolicyName"],
            region=region,
            aws_account_id=account_id,
            db_resource_id=resource_id,
            db_username=username,
            immuta_account_id=account,
            external_id=None,
            hostname=None,  # IAM does not know the server: the first apply records it
            port=None,
            database=None,
            id=role_name,
            role_arn=role["Arn"],
            policy_arn=arn,
            db_user_arn=user_arn,
            policy_document=policies.dumps(document),
            trust_policy=policies.dumps(policies.mask_external_ids(trust, None)),
            policy_attached=arn in self._attached(role_name),
            rds_iam_granted=None,
        )

    def _find_connect_policy(self, role: dict) -> tuple[str, Any, str]:
        """(policy ARN, document, rds-db ARN) of the role's rds-db:connect policy."""
        name = role["RoleName"]
        candidates: list[tuple[str, Any, list[str]]] = []
        for arn in self._attached(name):
            document = self._default_document(arn)
            resources = policies.connect_resources(document) if document is not None else []
            if resources:
                candidates.append((arn, document, resources))
        if not candidates:
            beside = arns.policy_arn_beside(
                role["Arn"], role.get("Path") or "/", f"{name}-rds-connect"
            )
            document = self._default_document(beside) if beside else None
            if beside and document is not None and policies.connect_resources(document):
                candidates.append((beside, document, policies.connect_resources(document)))
        if len(candidates) != 1 or len(candidates[0][2]) != 1:
            found = ", ".join(c[0] for c in candidates) or "none"
            raise ProviderError(
                f"Cannot import {TYPE_NAME}",
                f"IAM role {role['Arn']} needs exactly one attached customer managed policy "
                f"allowing rds-db:connect on one database user; found: {found}. Attach the "
                "policy (or keep only one), then import again.",
            )
        arn, document, resources = candidates[0]
        return arn, document, resources[0]

    # ------------------------------------------------------------------ IAM helpers

    def _get_role(self, role_name: str) -> dict[str, Any] | None:
        try:
            role: dict[str, Any] = self.iam.get_role(RoleName=role_name)["Role"]
            return role
        except Exception as exc:
            if error_code(exc) == "NoSuchEntity":
                return None
            raise self._aws_error(
                exc,
                f"Cannot read IAM role {role_name!r}",
                "The provider's AWS identity needs iam:GetRole.",
            ) from None

    def _policy_arn_by_name(self, spec: Spec) -> str | None:
        role = self._get_role(spec.role_name)
        role_arn = (role or {}).get("Arn")
        if role_arn is None:
            with suppress(Exception):
                role_arn = (
                    self.access.aws()
                    .client("sts")
                    .get_caller_identity()["Arn"]
                    .replace(":assumed-role/", ":role/")
                )
        return arns.policy_arn_beside(role_arn, spec.path, spec.policy_name) if role_arn else None

    def _default_document(self, arn: str) -> Any:
        """The default version's document, or None when the policy does not exist."""
        try:
            policy = self.iam.get_policy(PolicyArn=arn)["Policy"]
            version = self.iam.get_policy_version(
                PolicyArn=arn, VersionId=policy["DefaultVersionId"]
            )["PolicyVersion"]
        except Exception as exc:
            if error_code(exc) == "NoSuchEntity":
                return None
            raise self._aws_error(
                exc,
                f"Cannot read IAM policy {arn}",
                "The provider's AWS identity needs iam:GetPolicy and iam:GetPolicyVersion.",
            ) from None
        return self._parse(version.get("Document"), arn)

    def _attached(self, role_name: str) -> list[str]:
        try:
            pages = self.iam.get_paginator("list_attached_role_policies").paginate(
                RoleName=role_name
            )
            return [p["PolicyArn"] for page in pages for p in page["AttachedPolicies"]]
        except Exception as exc:
            if error_code(exc) == "NoSuchEntity":
                return []
            raise self._aws_error(
                exc,
                f"Cannot list the policies attached to IAM role {role_name!r}",
                "The provider's AWS identity needs iam:ListAttachedRolePolicies.",
            ) from None

    def _attach(self, role_name: str, policy_arn: str) -> None:
        try:
            self._retry(
                lambda: self.iam.attach_role_policy(RoleName=role_name, PolicyArn=policy_arn)
            )
        except Exception as exc:
            raise self._aws_error(
                exc,
                f"Cannot attach IAM policy {policy_arn} to role {role_name!r}",
                "The provider's AWS identity needs iam:AttachRolePolicy.",
            ) from None

    def _retry(self, call: Callable[[], Any], principal: bool = False) -> Any:
        """`call`, retried for a bounded time while IAM has not caught up with a create."""
        deadline = time.monotonic() + NO_SUCH_ENTITY_RETRY_SECONDS
        delay = 0.25
        while True:
            try:
                return call()
            except Exception as exc:
                code = error_code(exc)
                message = str(getattr(exc, "response", {}).get("Error", {}).get("Message", ""))
                transient = code == "NoSuchEntity" or (
                    principal
                    and code == "MalformedPolicyDocument"
                    and "principal" in message.lower()
                )
                if not transient or time.monotonic() + delay > deadline:
                    raise
            self.ctx.check_stop()
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    @staticmethod
    def _parse(document: Any, where: str) -> Any:
        try:
            return policies.parse(document)
        except ValueError:
            raise ProviderError(
                f"Unreadable policy document on {where}",
                "IAM returned a policy document that is not JSON, even URL-decoded.",
            ) from None

    def _aws_error(
        self, exc: Exception, summary: str, hint: str, path: tuple | None = None
    ) -> ProviderError:
        if isinstance(exc, ProviderError):
            return exc
        error = aws_error(exc, summary, hint)
        error.path = path
        return error

    # ------------------------------------------------------------------ PostgreSQL

    def _check_server(self, target: Target) -> None:
        def look(conn: psycopg.Connection) -> bool:
            found = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (RDS_IAM,))
            return found.fetchone() is not None

        if not self.access.run(target, self.ctx, look, f"looking for the role {RDS_IAM}"):
            raise ProviderError(
                f"No {RDS_IAM} role on {target.hostname}:{target.port}",
                f"Amazon RDS and Aurora PostgreSQL servers have a role {RDS_IAM!r}; its members "
                "log in with IAM auth tokens. The server at "
                f"{target.hostname}:{target.port} has none, so it is not an RDS or Aurora "
                "server (IAM database authentication works only there). Check hostname and "
                "port. Nothing was created in IAM.",
                ("hostname",),
            )

    def _membership(self, conn: psycopg.Connection, username: str) -> tuple[bool, bool | None]:
        """(is a member of rds_iam, can log in or None when the role does not exist)."""
        row = conn.execute(
            """
            SELECT u.rolcanlogin,
                   EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                           WHERE m.member = u.oid AND g.rolname = %s)
            FROM pg_roles u WHERE u.rolname = %s
            """,
            (RDS_IAM, username),
        ).fetchone()
        return (False, None) if row is None else (bool(row[1]), bool(row[0]))

    def _is_granted(self, target: Target, username: str) -> bool:
        def look(conn: psycopg.Connection) -> bool:
            return self._membership(conn, username)[0]

        return self.access.run(target, self.ctx, look, f"reading the roles of {username!r}")

    def _in_transaction(
        self, target: Target, username: str, work: Callable[[psycopg.Connection], T]
    ) -> T:
        """`work` in one transaction under the provider's lock on rds_iam memberships;
        PostgreSQL's refusal names the statement and what the provider's user needs."""

        def locked(conn: psycopg.Connection) -> T:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (LOCK_KEY,))
                return work(conn)

        return self.access.run(
            target, self.ctx, locked, f"changing the {RDS_IAM} membership of {username!r}"
        )

    def _grant(self, target: Target, username: str) -> None:
        user = sql.Identifier(username)

        def grant(conn: psycopg.Connection) -> bool | None:
            member, can_login = self._membership(conn, username)
            if can_login is None:
                self._execute(conn, target, sql.SQL("CREATE ROLE {} LOGIN").format(user))
            if not member:
                statement = sql.SQL("GRANT {} TO {}").format(sql.Identifier(RDS_IAM), user)
                self._execute(conn, target, statement)
            return can_login

        can_login = self._in_transaction(target, username, grant)
        if can_login is False:
            self.ctx.diags.warning(
                f"PostgreSQL role {username!r} cannot log in",
                f"The role {username!r} on {target.hostname}:{target.port} exists with "
                "NOLOGIN, so IAM auth tokens cannot log in as it. Run ALTER ROLE ... LOGIN "
                "(the provider leaves existing roles as they are).",
                ("db_username",),
            )

    def _revoke(self, target: Target, username: str) -> None:
        def revoke(conn: psycopg.Connection) -> bool:
            member, _ = self._membership(conn, username)
            if not member:
                return False  # the role is gone or was never granted: nothing to do
            statement = sql.SQL("REVOKE {} FROM {}").format(
                sql.Identifier(RDS_IAM), sql.Identifier(username)
            )
            self._execute(conn, target, statement)
            return self._membership(conn, username)[0]

        if self._in_transaction(target, username, revoke):
            self.ctx.diags.warning(
                f"{username!r} is still a member of {RDS_IAM}",
                f"On {target.hostname}:{target.port} another role granted {RDS_IAM} to "
                f"{username!r}; PostgreSQL revokes only grants made by the revoking role. Run "
                f"REVOKE {RDS_IAM} FROM ... GRANTED BY <grantor> as that role.",
            )

    def _execute(self, conn: psycopg.Connection, target: Target, statement: sql.Composed) -> None:
        """Run `statement`; a refusal names it and what the provider's user needs."""
        try:
            conn.execute(statement)
        except psycopg.Error as exc:
            if not exc.sqlstate or exc.sqlstate[:2] in ("40", "55", "57"):
                raise  # the pool's diagnostics, and its retries, for these
            text = statement.as_string(conn)
            user = conn.info.user
            raise postgres_error(exc, target, user, f"running {text}", GRANT_HINT) from None


def _recorded_server(state: ServicePrincipalState) -> Target | None:
    """Where the login role was granted rds_iam; None after an import, until the first apply."""
    hostname = state.get("hostname")
    if not hostname:
        return None
    return Target(
        hostname, int(state.get("port") or 5432), state.get("database") or DEFAULT_DATABASE
    )


def _connect_only(document: Any) -> bool:
    """Whether every statement of a document only allows rds-db:connect."""
    try:
        data = policies.normalise(policies.parse(document))
    except ValueError:
        return False
    statements = data.get("Statement") if isinstance(data, dict) else None
    if not isinstance(statements, list):
        return False
    return all(
        isinstance(s, dict) and s.get("Effect") == "Allow" and s.get("Action") == ["rds-db:connect"]
        for s in statements
    )


def _same_or_live(prior_text: Any, live: Any) -> str:
    """The prior text when the live document means the same: formatting is no drift."""
    if isinstance(prior_text, str) and policies.same(prior_text, live):
        return prior_text
    return policies.dumps(live)
