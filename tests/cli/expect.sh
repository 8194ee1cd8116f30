#!/usr/bin/env bash
# CLI smoke-test driver: expect.sh EXIT_CODE STDOUT_REGEX STDERR_REGEX ("-" = anything) [--needs REL_DATA_PATH] -- CMD...
# Runs CMD with @DATA@ replaced by the shared data root, checks the exit code and that stdout /
# stderr match the (extended) regexes. Exits 77 (ctest SKIP) when a --needs path
# is absent and PALU_TEST_DATA is unset; fails when it is set.
set -u
want_rc=$1; want_out=$2; want_err=$3; shift 3
[ "$want_out" = "-" ] && want_out=""
[ "$want_err" = "-" ] && want_err=""
data=${PALU_TEST_DATA:-${PALU_SOURCE_DIR:-.}/../shared/data}
while [ "$1" != "--" ]; do
  case $1 in
    --needs)
      if [ ! -e "$data/$2" ]; then
        if [ -n "${PALU_TEST_DATA:-}" ]; then echo "missing test data $data/$2" >&2; exit 1; fi
        echo "skip: needs $2 under ../shared/data or \$PALU_TEST_DATA" >&2; exit 77
      fi
      shift 2;;
    --needs-model)  # a git-ignored model under the source tree (scripts/get-*.sh)
      if [ ! -e "${PALU_SOURCE_DIR:-.}/$2" ]; then
        if [ "${CI:-}" = "true" ]; then echo "missing $2 (CI=true); run scripts/get-smollm2.sh" >&2; exit 1; fi
        echo "skip: needs $2; run scripts/get-smollm2.sh" >&2; exit 77
      fi
      shift 2;;
    *) echo "expect.sh: unknown option $1" >&2; exit 2;;
  esac
done
shift
args=()
for a in "$@"; do a="${a//@DATA@/$data}"; args+=("${a//@SRC@/${PALU_SOURCE_DIR:-.}}"); done
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
args=("${args[@]//@TMP@/$tmp}")
"${args[@]}" >"$tmp/out" 2>"$tmp/err"
rc=$?
ok=1
[ "$rc" = "$want_rc" ] || { echo "exit code: expected $want_rc, got $rc" >&2; ok=0; }
[ -z "$want_out" ] || grep -Eq -- "$want_out" "$tmp/out" || { echo "stdout does not match /$want_out/" >&2; ok=0; }
[ -z "$want_err" ] || grep -Eq -- "$want_err" "$tmp/err" || { echo "stderr does not match /$want_err/" >&2; ok=0; }
if [ $ok = 0 ]; then
  echo "--- command: ${args[*]}" >&2; echo "--- stdout:" >&2; head -c 4000 "$tmp/out" >&2
  echo "--- stderr:" >&2; head -c 4000 "$tmp/err" >&2; exit 1
fi
exit 0
