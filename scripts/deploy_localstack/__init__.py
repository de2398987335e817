"""`make deploy-localstack`: the app deployed onto LocalStack on this host (opt-in)."""
