import {
  to = immuta_user_mappings.sales
  id = "sales.cluster-abc123.us-east-1.rds.amazonaws.com:5432/immuta/Sales"
}
