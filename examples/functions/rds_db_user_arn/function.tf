terraform {
  required_version = ">= 1.8" # provider functions
}

# "arn:aws:rds-db:us-east-1:111122223333:dbuser:db-ABCDEFGHIJKLMNOPQRSTUVWXY1/immuta-svc"
output "immuta_db_user_arn" {
  value = provider::immuta::rds_db_user_arn(
    "us-east-1",
    "111122223333",
    "db-ABCDEFGHIJKLMNOPQRSTUVWXY1",
    "immuta-svc",
  )
}
