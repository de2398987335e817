#!/usr/bin/env bash
# Build the serving image (Dockerfile.serve) on a locally made base and query it.
#
#   make serve-image-check        (builds the wheel first: `make dist`)
#
# Opt-in like `make image-check`: it needs root (debootstrap), a running Docker engine and
# the Debian and PyPI mirrors, but no image registry (scripts/local_base_image.sh makes the
# base). The image is built from the wheel in dist/, exactly what `pip install
# 'mlsys[serve]'` installs; a model trained here by the checkout is mounted in its volume,
# and the container, published on 127.0.0.1 only, must report healthy through its own
# HEALTHCHECK, answer GET /health naming that champion, and predict on POST /stream.
set -euo pipefail
cd "$(dirname "$0")/.."
# The base image maker (shellchecked on its own).
# shellcheck source=/dev/null
source scripts/local_base_image.sh

base_image="${IMAGE_CHECK_BASE:-mlsys-base:bookworm-local}"
image="${SERVE_IMAGE_CHECK_IMAGE:-mlsys-serve:image-check}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
python="${PYTHON:-.venv/bin/python}"

require_image_tools serve-image-check
if ! compgen -G "dist/mlsys-*.whl" >/dev/null; then
  echo "serve-image-check: no wheel in dist/ (run make dist)" >&2
  exit 2
fi

started=$(date +%s)
ensure_local_base_image "$base_image" "$mirror"
# The build installs the wheel's pinned `serve` extra from PyPI (host network: no registry).
docker build --network host --build-arg BASE_IMAGE="$base_image" \
  -f Dockerfile.serve -t "$image" dist/
built=$(date +%s)

state="$(mktemp -d)"
container=""
cleanup() {
  if [ -n "$container" ]; then docker rm -f "$container" >/dev/null 2>&1 || true; fi
  rm -rf "$state"
}
trap cleanup EXIT

# A champion trained by this checkout, in the layout the image expects (its volume).
"$python" -m mlsys train --registry "$state/registry" --log "sqlite:///$state/train.sqlite3" \
  --time-budget 30 --json >"$state/train.json"
rm -f "$state/train.sqlite3"
chown -R 10001:10001 "$state"

# A flag as the container's command: the one DNS name clients may use besides addresses.
container="$(docker run -d -p 127.0.0.1::8080 -v "$state:/var/lib/mlsys" "$image" \
  --allowed-host mlsys.internal)"
port="$(docker port "$container" 8080/tcp | head -n 1 | sed 's/.*://')"

health=""
for _ in $(seq 1 60); do
  health="$(docker inspect --format '{{.State.Health.Status}}' "$container")"
  [ "$health" = healthy ] && break
  if [ "$(docker inspect --format '{{.State.Running}}' "$container")" != true ]; then break; fi
  sleep 2
done
if [ "$health" != healthy ]; then
  docker logs "$container" >&2 || true
  echo "serve-image-check: FAILED: the container is $health, not healthy" >&2
  exit 1
fi

"$python" - "http://127.0.0.1:$port" "$state/train.json" <<'PY'
import json
import sys
import urllib.error
import urllib.request

url, trained = sys.argv[1], json.load(open(sys.argv[2]))


def call(path, payload=None, host=None):
    body = None if payload is None else json.dumps(payload).encode()
    headers = {} if body is None else {"Content-Type": "application/json"}
    if host is not None:
        headers["Host"] = host
    request = urllib.request.Request(url + path, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


status, health = call("/health")
assert status == 200, (status, health)
assert trained["version"] in json.dumps(health), (trained["version"], health)
schema = call("/openapi.json")[1]
record = {name: 0.01 for name in schema["components"]["schemas"]["RecordObject"]["properties"]}
status, answer = call("/stream", {"data": record})
assert status == 200 and isinstance(answer["result"], float), (status, answer)
# Browser safety: a DNS name is refused (DNS rebinding) unless given with --allowed-host.
assert call("/health", host="mlsys.internal:8080")[0] == 200
status, refused = call("/health", host="rebound.example:8080")
assert status == 403 and refused["error"]["code"] == "forbidden", (status, refused)
print(f"serve-image-check: /health names {trained['version']}; /stream predicted {answer['result']:.3f}")
print("serve-image-check: Host mlsys.internal (--allowed-host) answered, rebound.example refused (403)")
PY

size="$(docker image inspect --format '{{.Size}}' "$image")"
echo "serve-image-check: OK: $image ($((size / 1000000)) MB) built in $((built - started)) s," \
  "healthy and answering in $(($(date +%s) - built)) s"
