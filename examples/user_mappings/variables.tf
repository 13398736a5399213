variable "pg_host" {
  description = "Hostname or IP address of the PostgreSQL 16/17 server."
  type        = string
  default     = "127.0.0.1"
}

variable "pg_port" {
  description = "PostgreSQL port."
  type        = number
  default     = 5432
}

variable "pg_username" {
  description = "PostgreSQL user that registers the connection: a superuser, or one with the privileges the Immuta integration needs."
  type        = string
  default     = "immuta_admin"
}

variable "pg_password" {
  description = "Password of pg_username."
  type        = string
  sensitive   = true
}

variable "immuta_database" {
  description = "The Immuta database: an existing database dedicated to Immuta."
  type        = string
  default     = "immuta"
}

variable "aws_region" {
  description = "AWS region of the RDS server and the IAM principals."
  type        = string
  default     = "us-east-1"
}

variable "aws_endpoint_url" {
  description = "AWS endpoint; null for AWS itself (tests point it at a local AWS-compatible server)."
  type        = string
  default     = null
}

variable "analyst_role" {
  description = "An existing IAM role whose sessions Immuta should govern as one Immuta user."
  type        = string
}

variable "etl_user" {
  description = "An existing IAM user."
  type        = string
}

variable "identity_store_id" {
  description = "IAM Identity Center identity store ID (d-...) to check User IDs in; null: not checked."
  type        = string
  default     = null
}

variable "identity_center_user_id" {
  description = "User ID of an IAM Identity Center user (from the user's page; not the email address)."
  type        = string
}
