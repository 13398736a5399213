resource "immuta_postgres_connection" "sales" {
  display_name    = "Sales"
  deployment_type = "rds"
  hostname        = "sales.cluster-abc123.us-east-1.rds.amazonaws.com"
  database        = "immuta"
}

# The Immuta user alice@example.com is the PostgreSQL role "alice"
# (matched case-insensitively).
resource "immuta_user_mapping" "alice" {
  connection_id = immuta_postgres_connection.sales.id
  immuta_user   = "alice@example.com"

  postgres {
    mode     = "username"
    username = "alice"
  }
}

# The PostgreSQL username is the Immuta username itself, and on AWS the
# user assumes an IAM role (names are case-sensitive).
resource "immuta_user_mapping" "analysts" {
  connection_id = immuta_postgres_connection.sales.id
  immuta_user   = "analysts"

  postgres {
    mode = "unset"
  }

  aws {
    user_type = "iam_role"
    principal = "sales-analysts"
  }
}

# An IAM Identity Center user: the principal is the User ID, never an email address.
resource "immuta_user_mapping" "carol" {
  connection_id = immuta_postgres_connection.sales.id
  immuta_user   = "carol@example.com"

  postgres {
    mode = "none"
  }

  aws {
    user_type = "identity_center_user"
    principal = "9067e4f2a8-0d1b3c5e-7f9a-4b2d-8c6e-1a3b5c7d9e0f"
  }
}
