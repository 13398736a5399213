terraform {
  required_version = ">= 1.0"

  required_providers {
    immuta = {
      source = "immuta-pg/immuta"
    }
  }
}

# One provider block = one set of credentials. The password comes from a sensitive
# variable (TF_VAR_pg_password); it never lands in the state.
provider "immuta" {
  auth_method = "password"
  username    = var.pg_username
  password    = var.pg_password
  sslmode     = "prefer"
}

# Register the server: checks it is PostgreSQL 16/17, checks the privileges of
# var.pg_username, crawls every database except the Immuta database itself, and
# records the registration in the "immuta" schema of that database.
resource "immuta_postgres_connection" "sales" {
  display_name    = "Quickstart"
  deployment_type = "self_managed"
  hostname        = var.pg_host
  port            = var.pg_port
  database        = var.immuta_database
}

# The Immuta user alice@example.com is the PostgreSQL role "alice".
resource "immuta_user_mapping" "alice" {
  connection_id = immuta_postgres_connection.sales.id
  immuta_user   = "alice@example.com"

  postgres {
    mode     = "username"
    username = "alice"
  }
}

# Unset: the PostgreSQL username is the Immuta username ("bob"), matched
# case-insensitively, so it resolves to the role "Bob".
resource "immuta_user_mapping" "bob" {
  connection_id = immuta_postgres_connection.sales.id
  immuta_user   = "bob"

  postgres {
    mode = "unset"
  }
}
