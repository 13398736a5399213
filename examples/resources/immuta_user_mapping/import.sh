# The ID is <connection id>#<immuta user> ("%" and "#" inside the user are percent-encoded).
terraform import immuta_user_mapping.alice 'sales.cluster-abc123.us-east-1.rds.amazonaws.com:5432/immuta/Sales#alice@example.com'
