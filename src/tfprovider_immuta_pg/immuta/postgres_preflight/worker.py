"""The work behind immuta_postgres_preflight: a survey of the server, nothing written."""

from __future__ import annotations

from typing import Any

from ...framework.provider import Context
from .. import rules
from ..access import Access
from ..inspector import Filters
from ..pg import Target
from ..survey import inspect
from .schema import PreflightState


def read(access: Access, config: dict[str, Any], ctx: Context) -> PreflightState:
    port = config.get("port") or 5432
    deployment = config.get("deployment_type") or "self_managed"
    target = Target(config["hostname"], port, config["database"])
    survey = inspect(access, ctx, target, Filters())
    missing = survey.missing
    method = access.settings.auth_method
    allowed = deployment in rules.AWS_DEPLOYMENTS or method == "password"
    return PreflightState(
        hostname=config["hostname"],
        port=port,
        database=config["database"],
        deployment_type=deployment,
        server_version=survey.facts.version,
        supported=survey.facts.supported,
        username=survey.facts.current_user,
        superuser=survey.facts.superuser,
        auth_method_allowed=allowed,
        missing_privileges=[line.removeprefix("- ") for line in missing.lines()],
        grant_statements=missing.grants(),
        databases=survey.databases,
        object_count=len(survey.objects),
        skipped_object_count=survey.skipped,
        dedicated=not survey.foreign,
        foreign_objects=survey.foreign,
        ready=survey.facts.supported and allowed and not missing,
    )
