# The default provider block connects as immuta_admin with var.pg_password (TF_VAR_pg_password)
# to a server prepared by the test suite (TF_VAR_pg_host, TF_VAR_pg_port).
variables {
  immuta_external_id = "not-used-by-this-test"
}

run "password_provider_connects" {
  command = plan

  assert {
    condition     = data.immuta_postgres_preflight.check.username == "immuta_admin"
    error_message = "the provider connects as the configured username"
  }
  assert {
    condition     = data.immuta_postgres_preflight.check.supported
    error_message = "PostgreSQL 16 or 17"
  }
}
