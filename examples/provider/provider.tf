terraform {
  required_providers {
    immuta = {
      source = "immuta-pg/immuta"
    }
  }
}

# Password authentication (self-managed PostgreSQL, Neon, or RDS/Aurora with a password).
# Keep the password out of HCL: pass it as a sensitive variable or set PGPASSWORD.
provider "immuta" {
  username        = "immuta_admin"
  password        = var.pg_password
  sslmode         = "prefer"
  connect_timeout = 10
}

# Amazon RDS or Aurora through an assumed IAM role: an RDS IAM auth token is minted
# per connection from the role's temporary credentials; the username is the role name.
provider "immuta" {
  alias       = "rds"
  auth_method = "aws_assumed_role"
  sslmode     = "require"

  aws {
    region      = "us-east-1"
    role_arn    = "arn:aws:iam::111122223333:role/immuta-svc"
    external_id = var.immuta_external_id
  }
}

variable "pg_password" {
  type      = string
  sensitive = true
}

variable "immuta_external_id" {
  type      = string
  sensitive = true
}
