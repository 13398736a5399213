output "role_arn" {
  description = "The Role ARN to enter in Immuta."
  value       = immuta_aws_service_principal.immuta.role_arn
}

output "db_user_arn" {
  description = "The rds-db ARN the service principal may connect as."
  value       = immuta_aws_service_principal.immuta.db_user_arn
}

output "connection_id" {
  value = immuta_postgres_connection.rds.id
}
