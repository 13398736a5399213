# `terraform test` for resource.tf: planning a connection needs no server (it is reached
# at apply), so this checks what the plan settles. tests/test_examples.py runs it in a copy
# of this folder with required_providers added and without import-by-string-id.tf (that
# import would read pg.example.internal).

run "plan" {
  command = plan

  assert {
    condition     = immuta_postgres_connection.sales.id == "pg.example.internal:5432/immuta/Sales"
    error_message = "id is ${immuta_postgres_connection.sales.id}, not hostname:port/database/display_name"
  }

  assert {
    condition     = immuta_postgres_connection.sales.port == 5432 && immuta_postgres_connection.sales.deployment_type == "self_managed"
    error_message = "port or deployment_type not planned as configured"
  }

  assert {
    condition     = immuta_postgres_connection.sales.on_missing_privileges == "skip"
    error_message = "on_missing_privileges is ${immuta_postgres_connection.sales.on_missing_privileges}"
  }

  assert {
    condition     = immuta_postgres_connection.sales.object_sync == "plan"
    error_message = "object_sync does not default to plan"
  }
}
