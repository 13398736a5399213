# `terraform test` for resource.tf, planned without a server. tests/test_examples.py runs it
# in a copy of this folder with required_providers added and without
# import-by-string-id.tf (that import would read the RDS host of the snippet).
#
# Only the connection and alice are planned: a mapping with an aws block reads the
# registered connection's deployment type at plan time, which needs the server.

run "plan" {
  command = plan

  plan_options {
    target = [immuta_user_mapping.alice]
  }

  assert {
    condition     = immuta_postgres_connection.sales.port == 5432
    error_message = "an rds connection's port does not default to 5432"
  }

  assert {
    condition     = immuta_user_mapping.alice.connection_id == "sales.cluster-abc123.us-east-1.rds.amazonaws.com:5432/immuta/Sales"
    error_message = "connection_id is ${immuta_user_mapping.alice.connection_id}"
  }

  assert {
    condition     = immuta_user_mapping.alice.id == "${immuta_postgres_connection.sales.id}#alice@example.com"
    error_message = "id is ${immuta_user_mapping.alice.id}, not <connection id>#<immuta user>"
  }

  assert {
    condition     = immuta_user_mapping.alice.postgres.mode == "username" && immuta_user_mapping.alice.postgres.username == "alice"
    error_message = "the postgres block is not planned as configured"
  }
}
