# `terraform test` for the assumed-role setup: creates the service principal with the
# admin credentials, then registers the server through it, then plans again.
#
# Needs a PostgreSQL 16/17 server standing in for RDS (with the role rds_iam, and the login
# role var.role_name holding the privileges Immuta needs), IAM and STS (AWS, or moto through
# TF_VAR_aws_endpoint_url) with admin keys in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, and an
# endpoint that accepts RDS IAM auth tokens (TF_VAR_iam_host/TF_VAR_iam_port). Every
# variable comes from the environment (TF_VAR_*); tests/test_examples.py runs this file
# against moto and the RDS front of tests/harness.

run "create_and_register" {
  command = apply

  assert {
    condition     = output.role_arn == "arn:aws:iam::${var.aws_account_id}:role/${var.role_name}"
    error_message = "role_arn is ${output.role_arn}"
  }

  assert {
    condition     = output.db_user_arn == provider::immuta::rds_db_user_arn(var.aws_region, var.aws_account_id, var.db_resource_id, var.role_name)
    error_message = "db_user_arn is ${output.db_user_arn}"
  }

  assert {
    condition     = immuta_aws_service_principal.immuta.policy_attached && immuta_aws_service_principal.immuta.rds_iam_granted
    error_message = "the policy is not attached, or ${var.role_name} is not a member of rds_iam"
  }

  assert {
    condition     = jsondecode(immuta_aws_service_principal.immuta.policy_document).Statement[0].Resource == output.db_user_arn
    error_message = "the rds-db:connect policy does not allow ${output.db_user_arn}"
  }

  assert {
    condition     = jsondecode(immuta_aws_service_principal.immuta.trust_policy).Statement[0].Principal.AWS == "arn:aws:iam::${var.immuta_account_id}:root"
    error_message = "the role does not trust Immuta's account"
  }

  # The external ID is write-only: the state shows a placeholder.
  assert {
    condition     = !strcontains(immuta_aws_service_principal.immuta.trust_policy, nonsensitive(var.immuta_external_id))
    error_message = "the external ID is in the state"
  }

  assert {
    condition     = output.connection_id == "${coalesce(var.iam_host, var.pg_host)}:${coalesce(var.iam_port, var.pg_port)}/${var.immuta_database}/${var.display_name}"
    error_message = "connection_id is ${output.connection_id}"
  }

  assert {
    condition     = immuta_postgres_connection.rds.auth_method == "aws_assumed_role" && immuta_postgres_connection.rds.username == var.role_name
    error_message = "the connection was not registered as the assumed role ${var.role_name}"
  }

  assert {
    condition     = immuta_postgres_connection.rds.deployment_type == "rds"
    error_message = "deployment_type is ${immuta_postgres_connection.rds.deployment_type}"
  }
}

# Right after the apply nothing may change: an update or replacement would turn these
# computed values unknown, and an unknown condition fails the run.
run "plan_after_apply" {
  command = plan

  assert {
    condition     = output.role_arn == run.create_and_register.role_arn && output.connection_id == run.create_and_register.connection_id
    error_message = "the plan would change the role or the connection"
  }

  assert {
    condition     = immuta_aws_service_principal.immuta.policy_attached && immuta_aws_service_principal.immuta.rds_iam_granted
    error_message = "the plan would repair the service principal"
  }

  assert {
    condition     = immuta_postgres_connection.rds.object_sync_status == "in sync" && immuta_postgres_connection.rds.registered_at != null
    error_message = "the plan would sync or re-register the connection"
  }
}
