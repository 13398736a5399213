terraform {
  required_version = ">= 1.0"

  required_providers {
    immuta = {
      source = "immuta-pg/immuta"
    }
  }
}

# PostgreSQL credentials for the registration; AWS settings only to verify the IAM
# principals of the mappings (keys from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
provider "immuta" {
  username = var.pg_username
  password = var.pg_password

  aws {
    region            = var.aws_region
    endpoint_url      = var.aws_endpoint_url
    identity_store_id = var.identity_store_id # checks Identity Center User IDs when set
  }
}

# AWS principals map users only on aurora and rds connections.
resource "immuta_postgres_connection" "warehouse" {
  display_name    = "Warehouse"
  deployment_type = "rds"
  hostname        = var.pg_host
  port            = var.pg_port
  database        = var.immuta_database
}

# PostgreSQL username, matched case-insensitively.
resource "immuta_user_mapping" "alice" {
  connection_id = immuta_postgres_connection.warehouse.id
  immuta_user   = "alice@example.com"

  postgres {
    mode     = "username"
    username = "ALICE"
  }
}

# No block: the PostgreSQL username is the Immuta username ("bob" finds the role "Bob").
resource "immuta_user_mapping" "bob" {
  connection_id = immuta_postgres_connection.warehouse.id
  immuta_user   = "bob"
}

# An Immuta-only user.
resource "immuta_user_mapping" "reporting" {
  connection_id = immuta_postgres_connection.warehouse.id
  immuta_user   = "reporting-service"

  postgres {
    mode = "none"
  }
}

# One IAM role maps to exactly one Immuta user on a connection: a user that stands for it.
resource "immuta_user_mapping" "analyst_role" {
  connection_id = immuta_postgres_connection.warehouse.id
  immuta_user   = "analyst-role"

  postgres {
    mode = "none"
  }

  aws {
    user_type = "iam_role"
    principal = var.analyst_role
  }
}

resource "immuta_user_mapping" "etl" {
  connection_id = immuta_postgres_connection.warehouse.id
  immuta_user   = "etl"

  aws {
    user_type = "iam_user"
    principal = var.etl_user
  }
}

# An IAM Identity Center user, by its User ID (never the email address).
resource "immuta_user_mapping" "dana" {
  connection_id = immuta_postgres_connection.warehouse.id
  immuta_user   = "dana@example.com"

  aws {
    user_type = "identity_center_user"
    principal = var.identity_center_user_id
  }
}

# Unset: the AWS username is the Immuta username.
resource "immuta_user_mapping" "carol" {
  connection_id = immuta_postgres_connection.warehouse.id
  immuta_user   = "carol"

  aws {
    user_type = "unset"
  }
}
