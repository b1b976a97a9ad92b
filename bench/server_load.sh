#!/bin/sh
# server_load.sh — a bounded loopback load test of infer-server: start it on 127.0.0.1 with
# stories260K, run wrk (2 threads, 256 connections, 10 s) POSTing small completions
# (bench/server_post.lua), print requests/s and latency percentiles, then check that the server
# is still healthy, that every non-2xx answer was a 429 (the concurrency limit), that no socket
# timed out, and that SIGTERM stops it cleanly. Traffic goes to 127.0.0.1 only.
#
#   sh bench/server_load.sh            (env: BUILD, SHARED, INFER_SERVER_BIN, CONNS, DURATION,
#                                       MAX_CONCURRENCY, SERVER_MAX_TOKENS)
set -eu

BUILD=${BUILD:-build}
SHARED=${SHARED:-../shared}
BIN=${INFER_SERVER_BIN:-$BUILD/infer-server}
CONNS=${CONNS:-256}
DURATION=${DURATION:-10s}
MAX_CONCURRENCY=${MAX_CONCURRENCY:-256}
here=$(dirname "$0")

command -v wrk >/dev/null || { echo "server_load: wrk is not installed (make deps)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "server_load: $BIN is not built" >&2; exit 1; }
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
LOG=$(mktemp)
OUT=$(mktemp)

"$BIN" --host 127.0.0.1 --port "$PORT" --max-concurrency "$MAX_CONCURRENCY" \
    --model "stories=$SHARED/models/stories260K.bin:$SHARED/models/tok512.bin" 2>"$LOG" &
PID=$!
cleanup() {
    kill "$PID" 2>/dev/null || true
    [ -n "${KEEP_LOG:-}" ] && cp "$LOG" "$KEEP_LOG"
    rm -f "$LOG" "$OUT"
}
trap cleanup EXIT

URL="http://127.0.0.1:$PORT"
i=0
until curl -sf "$URL/health" >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -gt 300 ] || ! kill -0 "$PID" 2>/dev/null; then
        echo "server_load: the server did not start:" >&2
        cat "$LOG" >&2
        exit 1
    fi
    sleep 0.1
done

echo "server_load: wrk -t2 -c$CONNS -d$DURATION against $URL/v1/completions (max-concurrency $MAX_CONCURRENCY)"
timeout 120 wrk -t2 -c"$CONNS" -d"$DURATION" --timeout 10s --latency -s "$here/server_post.lua" \
    "$URL/v1/completions" | tee "$OUT"

fail=0
if ! curl -sf "$URL/health" >/dev/null; then
    echo "server_load: FAIL: the server is not healthy after the load" >&2
    fail=1
fi
bad=$(awk '/^result: status / && $3 !~ /^2/ && $3 != 429 { s += $4 } END { print s + 0 }' "$OUT")
ok=$(awk '/^result: status 2/ { s += $4 } END { print s + 0 }' "$OUT")
limited=$(awk '/^result: status 429/ { s += $4 } END { print s + 0 }' "$OUT")
timeouts=$(awk '/^result: socket_errors/ { print $10 }' "$OUT")
if [ "$bad" -ne 0 ]; then
    echo "server_load: FAIL: $bad answers were neither 2xx nor 429" >&2
    fail=1
fi
if [ "$ok" -eq 0 ] || [ "${timeouts:-1}" -ne 0 ]; then
    echo "server_load: FAIL: $ok successful answers, ${timeouts:-?} timeouts" >&2
    fail=1
fi
kill -TERM "$PID"
rc=0
wait "$PID" || rc=$?
if [ $rc -ne 0 ]; then
    echo "server_load: FAIL: the server exited with $rc after SIGTERM" >&2
    fail=1
fi
logged=$(grep -c ' /v1/completions ' "$LOG" || true)
gone=$(grep -c ' /v1/completions 499 ' "$LOG" || true)
rps=$(awk '/^result: requests\/s/ { print $3 }' "$OUT")
p99=$(awk '/^result: p99_ms/ { print $3 }' "$OUT")
echo "server_load: $CONNS connections: $rps requests/s, p99 $p99 ms; 2xx $ok, 429 $limited, other $bad;" \
     "$logged requests logged by the server ($gone of them 499: in flight when wrk closed, cancelled)"
[ $fail -eq 0 ] && echo "server_load: PASS" || { echo "server_load: FAILED" >&2; exit 1; }
