# `terraform test` for the quickstart: registers a real server, then plans again.
#
# Needs what `./build.sh demo` sets up: PostgreSQL 16/17, an empty Immuta database, a
# database "sales" holding at least 4 tables/views, and the login roles "alice" and "Bob".
# The connection settings come from the environment (TF_VAR_pg_host, TF_VAR_pg_port,
# TF_VAR_pg_username, TF_VAR_pg_password, TF_VAR_immuta_database); tests/test_examples.py
# runs this file against a fresh database.

run "register" {
  command = apply

  assert {
    condition     = output.connection_id == "${var.pg_host}:${var.pg_port}/${var.immuta_database}/Quickstart"
    error_message = "connection_id is ${output.connection_id}, not hostname:port/database/display_name"
  }

  assert {
    condition     = contains(output.databases, "sales") && !contains(output.databases, var.immuta_database)
    error_message = "registered databases ${jsonencode(output.databases)}: want sales, never the Immuta database"
  }

  assert {
    condition     = output.data_object_count >= 4
    error_message = "only ${output.data_object_count} data objects registered"
  }

  assert {
    condition     = immuta_postgres_connection.sales.auth_method == "password" && immuta_postgres_connection.sales.username == var.pg_username
    error_message = "the connection does not record password authentication as var.pg_username"
  }

  assert {
    condition     = can(regex("^1[67]\\.", immuta_postgres_connection.sales.server_version))
    error_message = "server_version ${immuta_postgres_connection.sales.server_version} is not 16.x or 17.x"
  }

  assert {
    condition     = immuta_user_mapping.alice.postgres_user_found && immuta_user_mapping.alice.effective_postgres_username == "alice"
    error_message = "alice@example.com is not mapped to the existing role alice"
  }

  assert {
    condition     = immuta_user_mapping.bob.postgres_user_found && immuta_user_mapping.bob.effective_postgres_username == "Bob"
    error_message = "bob (mode unset) did not resolve case-insensitively to the role Bob"
  }

  assert {
    condition     = immuta_user_mapping.bob.id == "${output.connection_id}#bob"
    error_message = "mapping id ${immuta_user_mapping.bob.id} is not <connection id>#<immuta user>"
  }
}

# A plan right after the apply must change nothing. terraform test cannot read the plan's
# actions, but anything planned for update or replacement would turn these computed
# values unknown, and an unknown condition fails the run.
run "plan_after_apply" {
  command = plan

  assert {
    condition     = output.connection_id == run.register.connection_id
    error_message = "the connection id changed"
  }

  assert {
    condition     = output.data_object_count == run.register.data_object_count && output.databases == run.register.databases
    error_message = "the plan would change what is registered"
  }

  assert {
    condition     = immuta_postgres_connection.sales.object_sync_status == "in sync"
    error_message = "object sync planned: ${immuta_postgres_connection.sales.object_sync_status}"
  }

  assert {
    condition     = immuta_user_mapping.alice.postgres_user_found && immuta_user_mapping.bob.effective_postgres_username == "Bob"
    error_message = "the mappings would be verified again"
  }
}
