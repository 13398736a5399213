# `terraform test` for resource.tf, planned without a server. tests/test_examples.py runs it
# in a copy of this folder with required_providers added and without
# import-by-string-id.tf (that import would read the RDS host of the snippet).

run "plan" {
  command = plan

  assert {
    condition     = immuta_user_mappings.sales.connection_id == immuta_postgres_connection.sales.id
    error_message = "connection_id is ${immuta_user_mappings.sales.connection_id}"
  }

  assert {
    condition     = immuta_user_mappings.sales.exclusive == false && immuta_user_mappings.readers.exclusive == false
    error_message = "exclusive does not default to false"
  }

  assert {
    condition     = immuta_user_mappings.sales.mappings["alice@example.com"].postgres.username == "alice"
    error_message = "alice's postgres object is not planned as configured"
  }

  assert {
    condition     = immuta_user_mappings.sales.mappings["bob"].postgres == null && immuta_user_mappings.sales.mappings["bob"].aws == null
    error_message = "an empty entry is not left as written (null objects: the defaults)"
  }

  assert {
    condition     = immuta_user_mappings.sales.mappings["analysts"].aws.user_type == "iam_role"
    error_message = "the analysts entry's aws object is not planned as configured"
  }

  assert {
    condition     = join(",", keys(immuta_user_mappings.readers.mappings)) == "dana@example.com,erin@example.com"
    error_message = "the for expression did not make one entry per reader"
  }
}
