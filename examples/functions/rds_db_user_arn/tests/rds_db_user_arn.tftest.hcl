# `terraform test` for function.tf: provider functions need no server. tests/test_examples.py
# runs it in a copy of this folder with required_providers added.

variables {
  region = "eu-west-1"
}

run "plan" {
  command = plan

  assert {
    condition     = output.immuta_db_user_arn == "arn:aws:rds-db:us-east-1:111122223333:dbuser:db-ABCDEFGHIJKLMNOPQRSTUVWXY1/immuta-svc"
    error_message = "got ${output.immuta_db_user_arn}"
  }

  # An Aurora cluster's resource ID and a username with characters of its own.
  assert {
    condition     = provider::immuta::rds_db_user_arn(var.region, "111122223333", "cluster-ABCDEFGHIJKLMNOPQRSTUVWXY2", "svc_user.1") == "arn:aws:rds-db:eu-west-1:111122223333:dbuser:cluster-ABCDEFGHIJKLMNOPQRSTUVWXY2/svc_user.1"
    error_message = "the function does not build an Aurora cluster's ARN"
  }
}
