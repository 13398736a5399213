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
