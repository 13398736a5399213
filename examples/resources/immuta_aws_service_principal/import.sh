# The ID is the IAM role name. The external ID (write-only) and the PostgreSQL server
# cannot be read back: the first apply after the import records them in place.
terraform import immuta_aws_service_principal.immuta immuta-svc
