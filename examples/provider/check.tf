# Not part of the provider page: lets tests/provider.tftest.hcl prove that the default
# provider block above connects (a preflight reads the server at plan time).
variable "pg_host" {
  type    = string
  default = "db.example.internal"
}

variable "pg_port" {
  type    = number
  default = 5432
}

data "immuta_postgres_preflight" "check" {
  hostname = var.pg_host
  port     = var.pg_port
  database = "postgres"
}
