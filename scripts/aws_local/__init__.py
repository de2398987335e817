"""`make aws-local-test`: the synthesized stack run end to end in AWS SAM CLI's Lambda
runtime emulator against a moto server (see :mod:`scripts.aws_local.harness`)."""
