# `terraform test` for resource.tf: the plan works out every ARN and policy without AWS or
# PostgreSQL. tests/test_examples.py runs it in a copy of this folder with
# required_providers added and without import-by-string-id.tf (that import would read IAM).

provider "immuta" {
  aws {
    region = "us-east-1"
  }
}

variables {
  immuta_external_id = "example-external-id"
}

run "plan" {
  command = plan

  assert {
    condition     = immuta_aws_service_principal.immuta.id == "immuta-svc" && output.immuta_username == "immuta-svc"
    error_message = "id or db_username is not the role name"
  }

  assert {
    condition     = immuta_aws_service_principal.immuta.db_user_arn == "arn:aws:rds-db:us-east-1:111122223333:dbuser:db-ABCDEFGHIJKLMNOPQRSTUVWXY1/immuta-svc"
    error_message = "db_user_arn is ${immuta_aws_service_principal.immuta.db_user_arn}"
  }

  assert {
    condition = jsondecode(immuta_aws_service_principal.immuta.policy_document) == {
      Version = "2012-10-17"
      Statement = [{
        Effect   = "Allow"
        Action   = "rds-db:connect"
        Resource = immuta_aws_service_principal.immuta.db_user_arn
      }]
    }
    error_message = "policy_document is ${immuta_aws_service_principal.immuta.policy_document}"
  }

  assert {
    condition     = jsondecode(immuta_aws_service_principal.immuta.trust_policy).Statement[0].Principal.AWS == "arn:aws:iam::444455556666:root"
    error_message = "the role does not trust Immuta's account"
  }

  # The external ID is write-only: never in the plan or the state.
  assert {
    condition     = !strcontains(immuta_aws_service_principal.immuta.trust_policy, "example-external-id")
    error_message = "the external ID is in the plan"
  }

  assert {
    condition     = immuta_aws_service_principal.immuta.policy_name == "immuta-svc-rds-connect" && immuta_aws_service_principal.immuta.path == "/"
    error_message = "policy_name or path does not default as documented"
  }

  assert {
    condition     = immuta_aws_service_principal.immuta.port == 5432 && immuta_aws_service_principal.immuta.database == "postgres"
    error_message = "port or database does not default as documented"
  }
}
