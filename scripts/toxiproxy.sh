#!/usr/bin/env bash
# Start or stop an anode-toxiproxy server (Toxiproxy 2.x HTTP API) in the background.
#   scripts/toxiproxy.sh start|stop|status DIR
# start: builds the release binary (unless ANODE_TOXIPROXY_BIN names one), runs it on
#   127.0.0.1:${TOXIPROXY_PORT:-8474} with its log in DIR/toxiproxy.log and its pid in
#   DIR/toxiproxy.pid, and returns once GET /version answers. ANODE_SEED seeds the toxics.
# stop: SIGTERM the pid from DIR/toxiproxy.pid (SIGKILL after 10 s) and remove the file.
set -euo pipefail
cmd="${1:-}"; dir="${2:-}"
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop|status DIR" >&2; exit 2; }
root="$(cd "$(dirname "$0")/.." && pwd)"
port="${TOXIPROXY_PORT:-8474}"
pidfile="$dir/toxiproxy.pid"

bin() {
  if [ -n "${ANODE_TOXIPROXY_BIN:-}" ]; then echo "$ANODE_TOXIPROXY_BIN"; return; fi
  source "$root/scripts/setup.sh"
  (cd "$root" && cargo build --release -p anode-toxiproxy --bin anode-toxiproxy >&2)
  echo "$CARGO_TARGET_DIR/release/anode-toxiproxy"
}

alive() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

answers() ( # bash's /dev/tcp: no curl needed
  exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
  printf 'GET /version HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  status="$(head -n1 <&3 || true)"
  [[ "$status" == *" 200 "* ]]
) 2>/dev/null

case "$cmd" in
start)
  mkdir -p "$dir"; dir="$(cd "$dir" && pwd)"; pidfile="$dir/toxiproxy.pid"
  if alive; then echo "toxiproxy already running (pid $(cat "$pidfile"))"; exit 0; fi
  BIN="$(bin)"
  nohup "$BIN" --host 127.0.0.1 --port "$port" >>"$dir/toxiproxy.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 100); do
    if answers; then echo "toxiproxy on 127.0.0.1:$port (pid $(cat "$pidfile"))"; exit 0; fi
    alive || { echo "toxiproxy exited; see $dir/toxiproxy.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "toxiproxy did not answer on 127.0.0.1:$port within 10 s" >&2; exit 1
  ;;
stop)
  [ -f "$pidfile" ] || exit 0
  pid="$(cat "$pidfile")"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  ;;
status)
  if alive; then echo "toxiproxy running (pid $(cat "$pidfile"), port $port)"; else echo "toxiproxy not running"; exit 1; fi
  ;;
*) echo "usage: $0 start|stop|status DIR" >&2; exit 2 ;;
esac
