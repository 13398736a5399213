output "connection_id" {
  description = "ID of the registered connection (also its import ID)."
  value       = immuta_postgres_connection.sales.id
}

output "data_object_count" {
  description = "Number of tables, views, materialized views, partitioned and foreign tables registered."
  value       = immuta_postgres_connection.sales.data_object_count
}

output "databases" {
  description = "Databases registered through the connection."
  value       = immuta_postgres_connection.sales.databases
}
