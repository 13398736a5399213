variable "connection_id" {
  type    = string
  default = "db.example.internal:5432/immuta/Warehouse"
}

# The registered tables of one schema whose names start with "order".
data "immuta_postgres_data_objects" "orders" {
  connection_id = var.connection_id
  database      = "sales"
  schema        = "public"
  object_type   = "table"
  name_pattern  = "order*"
}

output "order_data_sources" {
  value = data.immuta_postgres_data_objects.orders.objects[*].full_name
}
