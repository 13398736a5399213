variable "pg_host" {
  description = "Endpoint of the RDS PostgreSQL 16/17 instance."
  type        = string
}

variable "pg_port" {
  description = "PostgreSQL port of the instance."
  type        = number
  default     = 5432
}

variable "iam_host" {
  description = "Endpoint IAM-authenticated clients use, when it is not pg_host (an RDS Proxy endpoint, or a test front)."
  type        = string
  default     = null
}

variable "iam_port" {
  description = "Port for iam_host; default pg_port."
  type        = number
  default     = null
}

variable "pg_username" {
  description = "The RDS master user (or another member of rds_superuser with CREATEROLE)."
  type        = string
  default     = "postgres"
}

variable "pg_password" {
  description = "Password of pg_username."
  type        = string
  sensitive   = true
}

variable "pg_sslmode" {
  description = "sslmode for the service principal's connections (RDS: require or verify-full)."
  type        = string
  default     = "require"
}

variable "immuta_database" {
  description = "The Immuta database: an existing database dedicated to Immuta."
  type        = string
  default     = "immuta"
}

variable "display_name" {
  description = "Name of the Immuta connection."
  type        = string
  default     = "Sales RDS"
}

variable "aws_region" {
  description = "AWS region of the instance."
  type        = string
  default     = "us-east-1"
}

variable "aws_endpoint_url" {
  description = "An AWS-compatible endpoint for IAM and STS (tests); null for AWS itself."
  type        = string
  default     = null
}

variable "aws_account_id" {
  description = "ID of the AWS account that owns the instance."
  type        = string
}

variable "db_resource_id" {
  description = "The instance's resource ID (DbiResourceId, db-...), or cluster-... for Aurora."
  type        = string
}

variable "role_name" {
  description = "Name of the IAM role Immuta assumes; also the PostgreSQL login role."
  type        = string
  default     = "immuta-svc"
}

variable "immuta_account_id" {
  description = "Immuta's AWS account ID, from your Immuta representative."
  type        = string
}

variable "immuta_external_id" {
  description = "The external ID from your Immuta representative."
  type        = string
  sensitive   = true
}
