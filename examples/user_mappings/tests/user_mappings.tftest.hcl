run "apply" {
  command = apply

  assert {
    condition     = immuta_user_mapping.alice.postgres_user_found && immuta_user_mapping.alice.effective_postgres_username == "alice"
    error_message = "alice@example.com maps to the role alice (case-insensitive)"
  }
  assert {
    condition     = immuta_user_mapping.bob.effective_postgres_username == "Bob"
    error_message = "bob falls back to the Immuta username and finds Bob"
  }
  assert {
    condition     = !immuta_user_mapping.reporting.postgres_user_found && immuta_user_mapping.reporting.effective_postgres_username == null
    error_message = "an Immuta-only user has no PostgreSQL role"
  }
  assert {
    condition     = endswith(immuta_user_mapping.analyst_role.aws_principal_arn, ":role/${var.analyst_role}")
    error_message = "the IAM role resolves to its ARN"
  }
  assert {
    condition     = endswith(immuta_user_mapping.etl.aws_principal_arn, ":user/${var.etl_user}")
    error_message = "the IAM user resolves to its ARN"
  }
  assert {
    condition     = immuta_user_mapping.dana.aws.principal == var.identity_center_user_id && immuta_user_mapping.dana.aws_principal_arn == null
    error_message = "an Identity Center user maps by its User ID"
  }
  assert {
    condition     = immuta_user_mapping.carol.aws.user_type == "unset" && immuta_user_mapping.carol.aws_principal_arn == null
    error_message = "unset maps the Immuta username itself"
  }
}

run "plan_is_stable" {
  command = plan

  assert {
    condition     = output.postgres_usernames == run.apply.postgres_usernames
    error_message = "PostgreSQL mappings unchanged"
  }
  assert {
    condition     = output.aws_principals == run.apply.aws_principals
    error_message = "AWS mappings unchanged"
  }
}
