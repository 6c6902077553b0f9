#!/usr/bin/env bash
# expect-usage-error.sh PROGRAM ARGS...: passes if PROGRAM rejects its
# arguments the way our commands do — exit status 2 and a first stderr
# line "<program name>: <what is wrong>" — and fails otherwise, so a
# bad-argument test cannot pass because of some other failure.
set -u
name=$(basename "$1")
err=$("$@" 2>&1 >/dev/null)
status=$?
first=$(printf '%s\n' "$err" | head -n 1)
case "$first" in
"$name: "?*) ok=1 ;;
*) ok=0 ;;
esac
if [ "$status" -ne 2 ] || [ "$ok" -ne 1 ]; then
    echo "expected a usage error (exit 2, '$name: ...'), got exit $status: $first" >&2
    exit 1
fi
