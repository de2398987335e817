#!/usr/bin/env bash
# Build the training image on a locally made base and run one training in it, offline.
#
#   make image-check        (or: scripts/image_check.sh)
#
# Opt-in, not part of `make test` or CI: it needs root (debootstrap), a running Docker
# engine and the Debian and PyPI mirrors, but no image registry. The base image is Debian
# bookworm from debootstrap with python3 and pip, shaped like python:3.11-slim (`python`
# and `pip` on PATH, pip allowed to install into the interpreter), imported with
# `docker import` (scripts/local_base_image.sh); training_job/Dockerfile is built on it
# through its BASE_IMAGE argument. The container then trains on the bundled data set with
# `--network none` and must promote a first champion into its own registry.
set -euo pipefail
# The base image maker (shellchecked on its own).
# shellcheck source=/dev/null
source "$(dirname "$0")/local_base_image.sh"

base_image="${IMAGE_CHECK_BASE:-mlsys-base:bookworm-local}"
image="${IMAGE_CHECK_IMAGE:-mlsys-training:image-check}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

require_image_tools image-check

ensure_local_base_image "$base_image" "$mirror"

# The build installs the pinned requirements from PyPI (host network: no registry involved).
docker build --network host --build-arg BASE_IMAGE="$base_image" \
  --build-arg GIT_COMMIT="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
  -f training_job/Dockerfile -t "$image" .

started=$(date +%s)
output="$(docker run --rm --network none "$image" --time-budget 60 2>&1)" || {
  echo "$output" >&2
  echo "image-check: FAILED: the training run in $image exited non-zero" >&2
  exit 1
}
echo "$output" | tail -n 5
if ! grep -qi "promoted" <<<"$output"; then
  echo "image-check: FAILED: the run did not promote a champion" >&2
  exit 1
fi
echo "image-check: OK: $image trained and promoted a champion offline in $(($(date +%s) - started)) s"
