import {
  to = immuta_aws_service_principal.immuta
  id = "immuta-svc"
}
