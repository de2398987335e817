#!/usr/bin/env bash
# `make deploy-localstack` (opt-in, not in `make test` or CI): `cdk bootstrap`, `cdk deploy
# --all` and `cdk destroy --all` of this app onto LocalStack running on this host, and a
# report of which resources LocalStack created and which were only recorded or mocked.
#
#   scripts/deploy_localstack.sh
#
# LocalStack (localstack-core, pinned in scripts/deploy_localstack/requirements.txt) runs
# in a Python 3.13 virtualenv of its own ($PYTHON313, default: python3.13 on PATH), cached
# under $MLSYS_AWS_LOCAL_CACHE by the lock file's content, with the plugins of
# scripts/deploy_localstack/plugins: DynamoDB served by moto (DynamoDB Local, a Java
# download, is not reachable), a Lambda executor that creates functions but does not run
# them (no runtime image or runtime-init binary can be downloaded), and record-only stand-ins
# for Batch, CodeDeploy, Application Auto Scaling, launch templates and dashboards, which the
# community edition lacks. Everything else is LocalStack's own. No AWS account is touched:
# every call goes to http://127.0.0.1:$LOCALSTACK_PORT with fake credentials.
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${MLSYS_AWS_LOCAL_CACHE:-/var/cache/mlsys-aws-local}"
port="${LOCALSTACK_PORT:-4566}"
work="${LOCALSTACK_WORK:-.build/localstack}"
repository="mlsys-local/deploy-localstack"  # the CI stack needs a non-placeholder repository
say() { echo "deploy-localstack: $*"; }
quiet_pip() { grep -v "^WARNING: Location .* is ignored" || true; }

# A python3.13 that runs: $PYTHON313, the one on PATH, or a pyenv installation.
python313=""
for candidate in "${PYTHON313:-}" "$(command -v python3.13 || true)" \
    "$(pyenv root 2>/dev/null || echo /nonexistent)"/versions/3.13*/bin/python3.13; do
  if [ -n "$candidate" ] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 13)' \
      >/dev/null 2>&1; then
    python313="$candidate"
    break
  fi
done
if [ -z "$python313" ]; then
  echo "deploy-localstack: Python 3.13 not found; set PYTHON313=/path/to/python3.13" >&2
  exit 2
fi
key=$(cat scripts/deploy_localstack/requirements.txt scripts/deploy_localstack/plugins/* \
  | sha256sum | cut -c1-16)
venv="$cache/localstack-$key"
if [ ! -e "$venv/.installed" ]; then
  say "installing LocalStack into $venv"
  mkdir -p "$cache"
  rm -rf "$venv"
  "$python313" -m venv "$venv"
  "$venv/bin/python" -m pip --disable-pip-version-check -q install --no-deps \
    -r scripts/deploy_localstack/requirements.txt 2>&1 | quiet_pip
  plugins="$(mktemp -d)"
  cp scripts/deploy_localstack/plugins/* "$plugins/"
  "$venv/bin/python" -m pip --disable-pip-version-check -q install --no-deps "$plugins" 2>&1 \
    | quiet_pip
  rm -rf "$plugins"
  touch "$venv/.installed"
fi

rm -rf "$work"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
say "starting LocalStack $("$venv/bin/python" -c 'from importlib.metadata import version; print(version("localstack-core"))') on 127.0.0.1:$port (log: $work/localstack.log)"
env XDG_CACHE_HOME="$work/cache" GATEWAY_LISTEN="127.0.0.1:$port" DNS_ADDRESS=0 \
  PROVIDER_OVERRIDE_DYNAMODB=moto LAMBDA_RUNTIME_EXECUTOR=unavailable \
  CFN_IGNORE_UNSUPPORTED_RESOURCE_TYPES=1 \
  setsid "$venv/bin/python" -m localstack.runtime.main >"$work/localstack.log" 2>&1 &
localstack_pid=$!
# shellcheck disable=SC2329  # called by the EXIT trap
stop_localstack() {
  kill "$localstack_pid" 2>/dev/null || return 0
  # LocalStack's host-mode runtime does not always exit on SIGTERM: 20 s, then SIGKILL.
  for _ in $(seq 20); do
    [ "$(ps -o stat= -p "$localstack_pid" 2>/dev/null | cut -c1)" = Z ] && break
    kill -0 "$localstack_pid" 2>/dev/null || break
    sleep 1
  done
  kill -KILL "$localstack_pid" 2>/dev/null || true
  wait "$localstack_pid" 2>/dev/null || true
}
trap stop_localstack EXIT
for _ in $(seq 120); do
  curl -fs "http://127.0.0.1:$port/_localstack/health" >/dev/null 2>&1 && break
  kill -0 "$localstack_pid" 2>/dev/null || { tail -5 "$work/localstack.log" >&2; exit 1; }
  sleep 1
done

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 \
  AWS_DEFAULT_REGION=us-east-1 AWS_ENDPOINT_URL="http://127.0.0.1:$port" \
  AWS_EC2_METADATA_DISABLED=true JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 \
  PATH="$PWD/.venv/bin:$PATH"
account=000000000000
cdk() { npx cdk "$@" -c github_repository="$repository" --no-notices --output "$work/cdk.out"; }
started=$(date +%s)
say "cdk bootstrap aws://$account/us-east-1"
cdk bootstrap "aws://$account/us-east-1" >"$work/bootstrap.log" 2>&1 \
  || { tail -20 "$work/bootstrap.log" >&2; exit 1; }
say "cdk deploy --all"
status=0
cdk deploy --all --require-approval never >"$work/deploy.log" 2>&1 || status=$?
grep -E "✅|❌|CREATE_FAILED" "$work/deploy.log" || true
.venv/bin/python -m scripts.deploy_localstack.report --localstack-python "$venv/bin/python" \
  --stack mlsys-dev --stack mlsys-dev-ci || status=1
say "cdk destroy --all"
cdk destroy --all --force >"$work/destroy.log" 2>&1 || { tail -20 "$work/destroy.log" >&2; status=1; }
grep -E "destroyed|✅|❌" "$work/destroy.log" || true
say "done in $(($(date +%s) - started)) s (bootstrap, deploy, report, destroy); exit $status"
exit "$status"
