#!/usr/bin/env bash
# Push the locally built training image to ECR under the commit SHA.
#
#   scripts/push_training_image.sh REPOSITORY_URI TAG
#
# Expects `docker build -t mlsys-training:TAG` to have run, and AWS credentials
# allowed to push to the repository. Tags are immutable, so a re-run for the
# same commit (a retried deploy) keeps the image already pushed.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 REPOSITORY_URI TAG" >&2
  exit 2
fi
repository_uri="$1"
tag="$2"
registry="${repository_uri%%/*}"

aws ecr get-login-password | docker login --username AWS --password-stdin "$registry"
docker tag "mlsys-training:$tag" "$repository_uri:$tag"
if ! output="$(docker push "$repository_uri:$tag" 2>&1)"; then
  if grep -q "already exists" <<<"$output"; then
    echo "$repository_uri:$tag already exists (immutable tag); keeping it"
    exit 0
  fi
  echo "$output" >&2
  exit 1
fi
echo "$output" | tail -n 3
echo "pushed $repository_uri:$tag"
