# Run against a connection "Warehouse" registered by the test suite, whose "sales" database
# holds public.orders, public.order_lines and public.customers (TF_VAR_connection_id).
run "orders" {
  command = plan

  assert {
    condition     = length(data.immuta_postgres_data_objects.orders.objects) == 2
    error_message = "two tables match order*"
  }
  assert {
    condition     = contains(output.order_data_sources, "Warehouse.sales.public.orders")
    error_message = "full data source names are connection.database.schema.object"
  }
}
