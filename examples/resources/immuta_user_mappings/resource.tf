resource "immuta_postgres_connection" "sales" {
  display_name    = "Sales"
  deployment_type = "rds"
  hostname        = "sales.cluster-abc123.us-east-1.rds.amazonaws.com"
  database        = "immuta"
}

# Every user of a directory on one connection, as one resource. Each entry takes the
# postgres and aws objects of immuta_user_mapping, with the same rules and defaults.
resource "immuta_user_mappings" "sales" {
  connection_id = immuta_postgres_connection.sales.id

  # true: this resource owns every mapping of the connection, and apply deletes the
  # mappings made outside Terraform.
  exclusive = false

  mappings = {
    # The PostgreSQL role "alice" (matched case-insensitively).
    "alice@example.com" = { postgres = { mode = "username", username = "alice" } }

    # {}: the PostgreSQL username is the Immuta username itself, no AWS principal.
    "bob" = {}

    # No PostgreSQL user; on AWS an IAM role (held by this Immuta user alone).
    "analysts" = {
      postgres = { mode = "none" }
      aws      = { user_type = "iam_role", principal = "sales-analysts" }
    }
  }
}

# A map built from a list of users, as a directory export would give it.
variable "readers" {
  type    = list(string)
  default = ["dana@example.com", "erin@example.com"]
}

resource "immuta_user_mappings" "readers" {
  connection_id = immuta_postgres_connection.sales.id
  mappings = {
    for user in var.readers : user => { postgres = { mode = "username", username = "reader" } }
  }
}
