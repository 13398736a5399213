# Run against a server prepared by the test suite (TF_VAR_pg_host, TF_VAR_pg_port; provider
# credentials from PGUSER/PGPASSWORD); its "immuta" database is dedicated and the user a
# superuser, so the server is ready.
run "preflight" {
  command = plan

  assert {
    condition     = data.immuta_postgres_preflight.warehouse.ready
    error_message = "a superuser on PostgreSQL 16/17 with a dedicated Immuta database is ready"
  }
  assert {
    condition     = data.immuta_postgres_preflight.warehouse.supported && data.immuta_postgres_preflight.warehouse.dedicated
    error_message = "supported version and dedicated Immuta database"
  }
  assert {
    condition     = length(output.grants_to_run) == 0
    error_message = "nothing to grant"
  }
}
