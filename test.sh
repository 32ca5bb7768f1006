#!/usr/bin/env bash
# Runs every test of the repository: the core module and the nested cluster
# module (a module of its own, so ./... of the root does not reach it).
# Extra arguments go to go test, e.g. ./test.sh -race or ./test.sh -run Queue.
set -euo pipefail
cd "$(dirname "$0")"
for m in $(find . -name go.mod -not -path './.git/*' -exec dirname {} \; | sort); do
  echo "== go test $m/..."
  (cd "$m" && go test -count=1 -timeout 20m "$@" ./...)
done
