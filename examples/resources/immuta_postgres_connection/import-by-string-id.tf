import {
  to = immuta_postgres_connection.sales
  id = "pg.example.internal:5432/immuta/Sales"
}
