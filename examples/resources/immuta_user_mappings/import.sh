# The ID is the connection id: the import brings in every mapping of the connection.
terraform import immuta_user_mappings.sales 'sales.cluster-abc123.us-east-1.rds.amazonaws.com:5432/immuta/Sales'
