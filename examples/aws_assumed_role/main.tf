# Immuta's "AWS Assumed Role (recommended)" setup for Amazon RDS PostgreSQL, end to end:
#
# 1. with administrator credentials, create the service principal Immuta assumes (the
#    rds-db:connect policy, the IAM role trusting Immuta's account on the external ID, the
#    attachment, and GRANT rds_iam to the login role of the same name);
# 2. as that service principal (STS AssumeRole + an RDS IAM auth token per connection),
#    register the server as an Immuta connection.
#
# The role must also hold the PostgreSQL privileges Immuta needs to register and govern
# the server (see the connection's documentation); grant them once as the master user.
terraform {
  required_version = ">= 1.11" # write-only arguments

  required_providers {
    immuta = {
      source = "immuta-pg/immuta"
    }
  }
}

# Administrator: the RDS master user (password), and AWS credentials allowed to manage
# IAM roles and policies (from the usual AWS_* environment variables).
provider "immuta" {
  alias    = "admin"
  username = var.pg_username
  password = var.pg_password

  aws {
    region       = var.aws_region
    endpoint_url = var.aws_endpoint_url
  }
}

resource "immuta_aws_service_principal" "immuta" {
  provider = immuta.admin

  role_name         = var.role_name
  aws_account_id    = var.aws_account_id
  db_resource_id    = var.db_resource_id
  immuta_account_id = var.immuta_account_id
  external_id       = var.immuta_external_id
  hostname          = var.pg_host
  port              = var.pg_port
}

# Immuta's side: assume the role with the external ID; the PostgreSQL username is the
# role name and the password an RDS IAM auth token minted for each connection.
provider "immuta" {
  auth_method = "aws_assumed_role"
  sslmode     = var.pg_sslmode

  aws {
    region       = var.aws_region
    role_arn     = immuta_aws_service_principal.immuta.role_arn
    external_id  = var.immuta_external_id
    endpoint_url = var.aws_endpoint_url
  }
}

resource "immuta_postgres_connection" "rds" {
  display_name    = var.display_name
  deployment_type = "rds"
  hostname        = coalesce(var.iam_host, var.pg_host)
  port            = coalesce(var.iam_port, var.pg_port)
  database        = var.immuta_database
}
