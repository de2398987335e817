#!/usr/bin/env bash
# `make aws-local-test`: the synthesized system stack run end to end on this machine, in AWS
# SAM CLI's Lambda runtime emulator against a moto server (scripts/aws_local/harness.py).
#
#   scripts/aws_local_test.sh SYNTH_DIR BUNDLE_DIR        (make passes both; see the Makefile)
#
# Installs what is missing (Debian's docker.io and debootstrap; the SAM CLI and the moto
# server into a virtualenv of their own), starts dockerd when none is running (and stops it
# again), builds the local Lambda base image (scripts/aws_local/base_image.sh) unless the
# image for the same inputs exists, then runs the harness. Needs root, or sudo for the
# installs and dockerd. Caches live in $MLSYS_AWS_LOCAL_CACHE (default
# /var/cache/mlsys-aws-local), keyed by content: the tools virtualenv by its requirements
# file, the base image by its recipe, Python version and architecture.
set -euo pipefail
cd "$(dirname "$0")/.."

synth_dir="$1"
bundle="$2"
arch="${AWS_LOCAL_ARCH:?set AWS_LOCAL_ARCH to x86_64 or arm64, the machine architecture}"
python_version="${LAMBDA_PYTHON:?set LAMBDA_PYTHON (the Makefile does)}"
stack="${AWS_LOCAL_STACK:-mlsys-dev}"
cache="${MLSYS_AWS_LOCAL_CACHE:-/var/cache/mlsys-aws-local}"
work="${AWS_LOCAL_WORK:-.build/aws-local}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
started=$(date +%s)

say() { echo "aws-local-test: $*"; }
# pip's notes about unused find-links locations of this machine's configuration are noise.
quiet_pip() { grep -v "^WARNING: Location .* is ignored" || true; }

install_missing() {
  local packages=()
  command -v dockerd >/dev/null || packages+=(docker.io)
  command -v debootstrap >/dev/null || packages+=(debootstrap)
  if [ "${#packages[@]}" -gt 0 ]; then
    say "installing ${packages[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${packages[@]}" >/dev/null
  fi
}

dockerd_pid=""
start_docker() {
  if docker info >/dev/null 2>&1; then
    return
  fi
  say "starting dockerd (log: $cache/dockerd.log)"
  $sudo mkdir -p "$cache"
  $sudo dockerd >"$cache/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && return
    sleep 1
  done
  echo "aws-local-test: dockerd did not start; see $cache/dockerd.log" >&2
  exit 1
}

stop_docker() {
  if [ -n "$dockerd_pid" ]; then
    say "stopping the dockerd this run started"
    $sudo kill "$dockerd_pid" 2>/dev/null || true
    wait "$dockerd_pid" 2>/dev/null || true
  fi
}

tools_venv() {
  local key venv
  key=$(sha256sum scripts/aws_local/requirements.txt | cut -c1-16)
  venv="$cache/tools-$key"
  if [ ! -e "$venv/.installed" ]; then
    say "installing the SAM CLI and moto server into $venv"
    $sudo mkdir -p "$cache"
    $sudo rm -rf "$venv"
    $sudo "${PYTHON:-python3}" -m venv "$venv"
    $sudo "$venv/bin/python" -m pip --disable-pip-version-check -q install \
      -r scripts/aws_local/requirements.txt 2>&1 | quiet_pip
    $sudo touch "$venv/.installed"
  fi
  tools_python="$venv/bin/python"
}

base_image() {
  # SAM looks for public.ecr.aws/lambda/python:<ver>-<arch>; the content-keyed tag says
  # which recipe built what that name points to.
  local key image runtime_image rapid_image
  key=$(cat scripts/aws_local/base_image.sh scripts/aws_local/lambda-runtime-requirements.txt \
    <(echo "$python_version $arch ${AWS_LOCAL_DEBIAN_SUITE:-forky}") | sha256sum | cut -c1-16)
  image="mlsys-lambda-base:python$python_version-$arch-$key"
  runtime_image="public.ecr.aws/lambda/python:$python_version-$arch"
  rapid_image="public.ecr.aws/lambda/python:$python_version-rapid-$arch"
  if docker image inspect "$image" >/dev/null 2>&1; then
    say "reusing the Lambda base image $image"
  else
    $sudo env PYTHON="$PWD/.venv/bin/python" scripts/aws_local/base_image.sh \
      "$python_version" "$arch" "$image" 2>&1 | quiet_pip
  fi
  if [ "$(docker image inspect -f '{{.Id}}' "$runtime_image" 2>/dev/null)" != \
       "$(docker image inspect -f '{{.Id}}' "$image")" ]; then
    docker tag "$image" "$runtime_image"
    # SAM builds its emulator image on the base once and reuses it by name: drop a stale one.
    docker image rm -f "$rapid_image" >/dev/null 2>&1 || true
  fi
}

install_missing
trap stop_docker EXIT
start_docker
tools_venv
base_image
say "prerequisites ready in $(($(date +%s) - started)) s"
rm -rf "$work"
mkdir -p "$work"
.venv/bin/python -m scripts.aws_local.harness \
  --template "$synth_dir/$stack.template.json" \
  --bundle "$bundle" --architecture "$arch" \
  --tools-python "$tools_python" --work "$work"
say "done in $(($(date +%s) - started)) s (including prerequisites)"
