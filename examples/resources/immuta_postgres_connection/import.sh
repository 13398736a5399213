# The ID is hostname:port/database/display_name
# ("%", "/" and "#" inside the database and display name are percent-encoded).
terraform import immuta_postgres_connection.sales 'pg.example.internal:5432/immuta/Sales'
