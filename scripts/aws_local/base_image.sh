#!/usr/bin/env bash
# Build a stand-in for the Lambda Python base image (public.ecr.aws/lambda/python:<ver>-<arch>),
# which cannot be pulled here: no image registry is reachable.
#
#   scripts/aws_local/base_image.sh PYTHON_VERSION ARCH IMAGE_TAG
#
# Debian (debootstrap, a suite whose python<ver> is the bundle's Python) with the Lambda
# runtime interface client (awslambdaric) and boto3 under /var/runtime, laid out like the
# real image: code in /var/task, /var/runtime/bootstrap starting the runtime for $_HANDLER,
# sys.path /var/task, /opt/python, /var/runtime. SAM CLI adds its runtime interface
# emulator on top (`sam local ... --skip-pull-image`). Needs root (debootstrap) and Docker.
set -euo pipefail

python_version="$1"
arch="$2"          # x86_64 or arm64 (Lambda's names)
image="$3"
suite="${AWS_LOCAL_DEBIAN_SUITE:-forky}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python3}"

case "$arch" in
  x86_64) debian_arch=amd64 wheel_machine=x86_64 ;;
  arm64) debian_arch=arm64 wheel_machine=aarch64 ;;
  *) echo "base_image: unknown architecture $arch (x86_64 or arm64)" >&2; exit 2 ;;
esac

rootfs="$(mktemp -d)"
trap 'rm -rf "$rootfs"' EXIT
# bookworm's debootstrap has no script for newer suites; sid's fits every current one.
script=/usr/share/debootstrap/scripts/sid
echo "base_image: debootstrap $suite ($debian_arch) with python$python_version"
if ! debootstrap --variant=minbase --arch="$debian_arch" \
    --include="python$python_version,ca-certificates" \
    "$suite" "$rootfs" "$mirror" "$script" >"$rootfs.log" 2>&1; then
  tail -n 5 "$rootfs.log" >&2
  echo "base_image: debootstrap of $suite failed; is python$python_version in Debian $suite?" \
    "(set AWS_LOCAL_DEBIAN_SUITE to a suite that has it)" >&2
  exit 1
fi
rm -f "$rootfs.log"

# The runtime's own packages, as wheels for the image's platform (no pip inside the image).
mkdir -p "$rootfs/var/runtime" "$rootfs/var/task" "$rootfs/opt/python"
"$python" -m pip --disable-pip-version-check -q install --no-compile \
  --platform "manylinux_2_28_$wheel_machine" --platform "manylinux2014_$wheel_machine" \
  --only-binary=:all: --python-version "$python_version" --implementation cp \
  --target "$rootfs/var/runtime" -r "$here/lambda-runtime-requirements.txt"
cat >"$rootfs/var/runtime/bootstrap" <<EOF
#!/bin/sh
# Lambda's Python runtime: the handler module is imported from the task root first.
export PYTHONPATH=/var/task:/opt/python:/var/runtime
cd /var/task
exec /usr/bin/python$python_version -m awslambdaric "\$_HANDLER"
EOF
chmod 755 "$rootfs/var/runtime/bootstrap"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

tar -C "$rootfs" -c . | docker import \
  --platform "linux/$([ "$arch" = x86_64 ] && echo amd64 || echo arm64)" \
  --change "ENV LANG=C.UTF-8 TZ=:UTC LAMBDA_TASK_ROOT=/var/task LAMBDA_RUNTIME_DIR=/var/runtime" \
  --change "ENV PATH=/usr/local/bin:/usr/bin:/bin:/opt/bin" \
  --change "WORKDIR /var/task" \
  --change 'ENTRYPOINT ["/var/runtime/bootstrap"]' \
  --change "LABEL org.mlsys.lambda-base=python$python_version-$arch" \
  - "$image" >/dev/null
echo "base_image: imported $image"
