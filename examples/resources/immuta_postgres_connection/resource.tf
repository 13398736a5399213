# Register a self-managed PostgreSQL 16/17 server. "immuta" is a database created
# for Immuta; every other database on the server is crawled and registered through it.
resource "immuta_postgres_connection" "sales" {
  display_name    = "Sales"
  deployment_type = "self_managed"
  hostname        = "pg.example.internal"
  port            = 5432
  database        = "immuta"

  # Register what the credentials can govern and report the rest,
  # instead of refusing (the default, "error").
  on_missing_privileges = "skip"
}

output "registered_databases" {
  value = immuta_postgres_connection.sales.databases
}
