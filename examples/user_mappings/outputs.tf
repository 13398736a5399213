output "postgres_usernames" {
  description = "Immuta user -> PostgreSQL role found (null: none)."
  value = {
    for m in [immuta_user_mapping.alice, immuta_user_mapping.bob, immuta_user_mapping.reporting] :
    m.immuta_user => m.effective_postgres_username
  }
}

output "aws_principals" {
  description = "Immuta user -> resolved IAM ARN, or the Identity Center User ID."
  value = merge(
    {
      for m in [immuta_user_mapping.analyst_role, immuta_user_mapping.etl] :
      m.immuta_user => m.aws_principal_arn
    },
    { (immuta_user_mapping.dana.immuta_user) = immuta_user_mapping.dana.aws.principal },
  )
}
