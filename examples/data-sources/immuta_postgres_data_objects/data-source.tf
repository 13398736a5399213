# The registered tables of one schema whose names start with "order".
data "immuta_postgres_data_objects" "orders" {
  connection_id = "db.example.internal:5432/immuta/Warehouse"
  database      = "sales"
  schema        = "public"
  object_type   = "table"
  name_pattern  = "order*"
}

output "order_data_sources" {
  value = data.immuta_postgres_data_objects.orders.objects[*].full_name
}
