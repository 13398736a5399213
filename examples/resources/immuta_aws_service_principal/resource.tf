# The IAM role Immuta assumes to reach an RDS PostgreSQL instance, with its
# rds-db:connect policy, and the database login role granted rds_iam. The provider's
# own credentials (the RDS master user, and AWS keys that may manage IAM) do the work.
terraform {
  required_version = ">= 1.11" # write-only external_id
}

resource "immuta_aws_service_principal" "immuta" {
  role_name         = "immuta-svc"
  aws_account_id    = "111122223333"
  db_resource_id    = "db-ABCDEFGHIJKLMNOPQRSTUVWXY1"
  immuta_account_id = "444455556666"         # from your Immuta representative
  external_id       = var.immuta_external_id # write-only: never stored in state
  hostname          = "sales.abc123xyz.us-east-1.rds.amazonaws.com"

  # Optional (defaults shown):
  # region      = "us-east-1"               # the provider's aws.region
  # db_username = "immuta-svc"              # role_name: Immuta logs in as the role name
  # policy_name = "immuta-svc-rds-connect"
  # path        = "/"
  # port        = 5432
  # database    = "postgres"
}

variable "immuta_external_id" {
  type      = string
  sensitive = true
}

# What to enter in Immuta (or in a provider block with auth_method = "aws_assumed_role").
output "immuta_role_arn" {
  value = immuta_aws_service_principal.immuta.role_arn
}

output "immuta_username" {
  value = immuta_aws_service_principal.immuta.db_username
}
