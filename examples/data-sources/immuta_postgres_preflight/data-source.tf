terraform {
  required_version = ">= 1.5" # check blocks
}

variable "pg_host" {
  type    = string
  default = "db.example.internal"
}

variable "pg_port" {
  type    = number
  default = 5432
}

# Check a server before registering it; fail `terraform plan` in CI when it is not ready.
data "immuta_postgres_preflight" "warehouse" {
  hostname = var.pg_host
  port     = var.pg_port
  database = "immuta"
}

check "warehouse_ready_for_immuta" {
  assert {
    condition     = data.immuta_postgres_preflight.warehouse.ready
    error_message = "Not ready: ${join("; ", data.immuta_postgres_preflight.warehouse.missing_privileges)}"
  }
}

output "grants_to_run" {
  value = data.immuta_postgres_preflight.warehouse.grant_statements
}
