#!/usr/bin/env bash
# Sourced by scripts/image_check.sh and scripts/serve_image_check.sh: defines
# require_image_tools LABEL (exit 2 naming a missing docker or debootstrap) and
# ensure_local_base_image IMAGE MIRROR, which makes IMAGE (unless it exists) without any
# image registry. The base is Debian bookworm from debootstrap with python3 and pip, shaped
# like python:3.11-slim (`python` and `pip` on PATH, pip allowed to install into the
# interpreter), imported with `docker import`. Needs root and debootstrap.

require_image_tools() {
  local label="$1" tool
  for tool in docker debootstrap; do
    if ! command -v "$tool" >/dev/null; then
      echo "$label: $tool not found (Debian/Ubuntu: apt-get install docker.io debootstrap)" >&2
      exit 2
    fi
  done
}

ensure_local_base_image() {
  local base_image="$1" mirror="$2" rootfs
  if docker image inspect "$base_image" >/dev/null 2>&1; then
    echo "reusing base image $base_image"
    return 0
  fi
  rootfs="$(mktemp -d)"
  echo "debootstrap bookworm into $rootfs"
  debootstrap --variant=minbase --include=python3,python3-pip,ca-certificates \
    bookworm "$rootfs" "$mirror" >/dev/null
  # python:*-slim has `python` on PATH and lets pip install into the interpreter.
  ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"
  rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
  # The host's trust store, so a TLS-intercepting proxy in front of PyPI (as on build
  # machines behind a corporate proxy) is trusted by the build's pip as it is by the host.
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import - "$base_image" >/dev/null
  rm -rf "$rootfs"
  echo "imported $base_image"
}
