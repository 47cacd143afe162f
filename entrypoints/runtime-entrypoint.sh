#!/bin/sh
# openwork runtime entrypoint — generated from entrypoints/runtime-entrypoint.sh.
# Starts the engine, waits until it is healthy, starts the router (when enabled)
# and waits likewise, then execs the runtime server, which adopts both. Without a
# router and with OPENWORK_SERVER_EARLY=1, it execs the server as soon as the
# engine is started, and the server does the waiting (the start is shorter).
# Secrets are only ever read from the environment: none is written here or put
# on a command line. No token comes here: only what checks one (the client
# token's digest, the host token's public key). Do not edit: openwork rewrites this file on every start.
set -u
umask 077

# @@CONFIG@@

log() { printf 'openwork-entrypoint: %s\n' "$*" >&2; }

# --- configuration: the environment wins over the values written above ------
for name in OPENWORK_PERSIST OPENWORK_RUNTIMES OPENWORK_RUNTIME_ID OPENWORK_WORKSPACE OPENWORK_SERVER_HOST OPENWORK_SERVER_PORT OPENWORK_ENGINE_PORT; do
  eval "value=\${$name:-}"
  if [ -z "$value" ]; then log "$name is empty: it must name a value"; exit 2; fi
done
for name in OPENWORK_TOKEN_SHA256 OPENWORK_HOST_KEY OPENCODE_SERVER_PASSWORD; do
  eval "value=\${$name:-}"
  if [ -z "$value" ]; then
    log "$name must be set in the environment (a secret: it is never written into this script)"
    exit 2
  fi
done
unset value
case "$OPENWORK_ROUTER_ENABLED" in 1 | 0) ;; *) log "OPENWORK_ROUTER_ENABLED must be 0 or 1"; exit 2 ;; esac
case "$OPENWORK_SERVER_EARLY" in 1 | 0) ;; *) log "OPENWORK_SERVER_EARLY must be 0 or 1"; exit 2 ;; esac
case "$OPENWORK_IMPORTS_INSTALLED" in 1 | 0) ;; *) log "OPENWORK_IMPORTS_INSTALLED must be 0 or 1"; exit 2 ;; esac

RUNTIME_DIR=$OPENWORK_RUNTIMES/$OPENWORK_RUNTIME_ID
if [ ! -d "$RUNTIME_DIR" ]; then log "runtime directory $RUNTIME_DIR is missing"; exit 1; fi
LOG_DIR=$OPENWORK_PERSIST/$PERSIST_LOGS
OPENWORK_ENGINE_LOG=$LOG_DIR/$ENGINE_LOG_FILE
OPENWORK_ROUTER_LOG=$LOG_DIR/$ROUTER_LOG_FILE

# Sidecars keep their state inside the persisted volume, never in the user's home.
HOME=$OPENWORK_PERSIST/$PERSIST_HOME
XDG_CONFIG_HOME=$HOME/$HOME_XDG_CONFIG
XDG_DATA_HOME=$HOME/$HOME_XDG_DATA
XDG_STATE_HOME=$HOME/$HOME_XDG_STATE
XDG_CACHE_HOME=$HOME/$HOME_XDG_CACHE
PATH=$RUNTIME_DIR:$PATH
export HOME XDG_CONFIG_HOME XDG_DATA_HOME XDG_STATE_HOME XDG_CACHE_HOME PATH
export OPENWORK_PERSIST OPENWORK_RUNTIMES OPENWORK_RUNTIME_ID OPENWORK_WORKSPACE OPENWORK_SERVER_HOST OPENWORK_SERVER_PORT
export OPENWORK_ENGINE_PORT OPENWORK_ENGINE_LOG OPENWORK_ROUTER_ENABLED OPENWORK_ROUTER_HEALTH_PORT
export OPENCODE_SERVER_USERNAME="${OPENCODE_SERVER_USERNAME:-opencode}"
# Each program run here is a fork on the way to the engine's start (a few ms each): as few as can be.
RUN_DIR=$OPENWORK_PERSIST/$PERSIST_STATE/entrypoint/$$
mkdir -p "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$XDG_STATE_HOME" "$XDG_CACHE_HOME" "$LOG_DIR" "$RUN_DIR" || exit 1
# Never start in the workspace: files there must not influence how sidecars start.
cd "$HOME" || exit 1

# The user's opencode config, logins and CA bundle for this start (read-only at $OPENWORK_IMPORT), copied
# into the runtime's own directories; a login made in here outlives restarts (src/credentials/install.ts).
# On the host the start has done this itself (OPENWORK_IMPORTS_INSTALLED=1): the engine need not wait.
if [ "$OPENWORK_IMPORTS_INSTALLED" = 0 ] && { [ -n "${OPENWORK_IMPORT:-}" ] || [ -f "$OPENWORK_PERSIST/$PERSIST_STATE/$IMPORTED_FILE" ]; }; then
  # (Without NODE_EXTRA_CA_CERTS: it names the bundle this very step installs, and node would warn.)
  (unset NODE_EXTRA_CA_CERTS && exec "$RUNTIME_DIR/node" "$RUNTIME_DIR/openwork-server.mjs" install-imports) || {
    log "could not install the user's opencode config and logins"
    exit 1
  }
fi
unset OPENWORK_IMPORT

# A proxy on the host's loopback was named by a placeholder: in Apple's VM the host is the gateway,
# which only the VM knows (src/credentials/proxy.ts). /proc/net/route holds it as little-endian hex.
GATEWAY_PLACEHOLDER=openwork-host-gateway.invalid
for name in HTTPS_PROXY https_proxy HTTP_PROXY http_proxy ALL_PROXY all_proxy; do
  eval "value=\${$name:-}"
  case $value in
    *"$GATEWAY_PLACEHOLDER"*)
      if [ -z "${GATEWAY:-}" ]; then
        while read -r _iface dest gw _rest; do
          if [ "$dest" = 00000000 ]; then
            b1=${gw%??????} t=${gw#??}
            b2=${t%????} t=${gw#????}
            b3=${t%??} b4=${gw#??????}
            GATEWAY=$(printf '%d.%d.%d.%d' "0x$b4" "0x$b3" "0x$b2" "0x$b1")
            break
          fi
        done </proc/net/route
        if [ -z "${GATEWAY:-}" ]; then log "no default gateway: cannot point $name at the host"; exit 1; fi
      fi
      value="${value%%"$GATEWAY_PLACEHOLDER"*}$GATEWAY${value#*"$GATEWAY_PLACEHOLDER"}"
      eval "$name=\$value"
      export "$name"
      log "$name: the host's loopback is the VM's gateway $GATEWAY here"
      ;;
  esac
done
unset value

# Components run detached from this shell, which becomes the server: each is started by a subshell
# that exits at once, so its keeper (the subshell that waits for it and records its exit code) is
# re-parented to init (tini in a container, the system's init on a host) and reaped there. The
# server adopts a component without ever holding it as a dead child (a zombie).
# (RUN_DIR, made above, holds their pid pipes and exit codes; older starts' are swept once the engine runs.)

# start_detached NAME LOG COMMAND...: sets STARTED_PID; the exit code lands in $RUN_DIR/NAME.exit.
start_detached() {
  name=$1 file=$2
  shift 2
  # (Left by an earlier shell with this pid only: tested first, as rm is a fork.)
  if [ -e "$RUN_DIR/$name.pid" ] || [ -e "$RUN_DIR/$name.exit" ]; then rm -f "$RUN_DIR/$name.pid" "$RUN_DIR/$name.exit"; fi
  # A log is appended to, never through a link: one planted here would make this start write a file elsewhere.
  if [ -L "$file" ] || { [ -e "$file" ] && [ ! -f "$file" ]; }; then
    log "$file is not a regular file (a link?); replacing it"
    rm -f "$file" || return 1
  fi
  mkfifo "$RUN_DIR/$name.pid" || return 1
  (
    (
      "$@" >>"$file" 2>&1 </dev/null &
      echo $! >"$RUN_DIR/$name.pid"
      wait $!
      echo $? >"$RUN_DIR/$name.exit.tmp" && mv -f "$RUN_DIR/$name.exit.tmp" "$RUN_DIR/$name.exit"
    ) &
  )
  read -r STARTED_PID <"$RUN_DIR/$name.pid"
  rm -f "$RUN_DIR/$name.pid"
}

# exit_code_of NAME: what the keeper recorded (it may take a moment after the process is gone).
exit_code_of() {
  tries=0
  while [ ! -f "$RUN_DIR/$1.exit" ] && [ "$tries" -lt 20 ]; do sleep 0.05; tries=$((tries + 1)); done
  cat "$RUN_DIR/$1.exit" 2>/dev/null || echo unknown
}

ENGINE_PID=
ROUTER_PID=
PROBE_PID=
stop_children() {
  for pid in $PROBE_PID $ROUTER_PID $ENGINE_PID; do kill -TERM "$pid" 2>/dev/null; done
  sleep 1
  for pid in $ROUTER_PID $ENGINE_PID; do kill -KILL "$pid" 2>/dev/null; done
}
trap 'log "stopped by a signal during start-up"; stop_children; exit 143' INT TERM HUP

# The size of a log before a component starts: on failure only what this start wrote is shown.
log_size() { if [ -f "$1" ]; then wc -c <"$1" | tr -d ' '; else echo 0; fi; }
last_output() { tail -c +"$(($2 + 1))" "$1" 2>/dev/null | tail -n 20 >&2; }

# wait_healthy NAME PID URL LOG OFFSET [probe flags]: until healthy, the process exits, or the deadline passes.
# One probe process does the whole wait (exit 0 healthy, 3 the process is gone, 1 the deadline passed,
# with the last reason on stderr). It runs in the background so that a signal runs the trap at once
# rather than after the wait. The staged server doubles as the probe, so the image needs no curl.
wait_healthy() {
  name=$1 pid=$2 url=$3 file=$4 offset=$5
  shift 5
  "$RUNTIME_DIR/node" "$RUNTIME_DIR/openwork-server.mjs" probe --url "$url" --timeout-ms 2000 \
    --wait-ms "$((OPENWORK_HEALTH_DEADLINE_S * 1000))" --pid "$pid" "$@" >/dev/null &
  PROBE_PID=$!
  wait "$PROBE_PID"
  result=$?
  PROBE_PID=
  case $result in
    0) return 0 ;;
    3) log "$name exited with code $(exit_code_of "$name") before it was healthy; its last output:" ;;
    *) log "$name was not healthy within ${OPENWORK_HEALTH_DEADLINE_S}s ($url); its last output:" ;;
  esac
  last_output "$file" "$offset"
  stop_children
  exit 1
}

# Without a router, nothing else waits for the engine: the server starts at once, boots while the engine
# does, and waits for the engine's health itself (failing the start as below if it never comes).
SERVER_EARLY=0
if [ "$OPENWORK_SERVER_EARLY" = 1 ] && [ "$OPENWORK_ROUTER_ENABLED" = 0 ]; then SERVER_EARLY=1; fi

log "starting the engine on 127.0.0.1:$OPENWORK_ENGINE_PORT (runtime $OPENWORK_RUNTIME_ID)"
# The log's size, for showing only this start's output if the wait here fails (the server keeps its own).
offset=0
if [ "$SERVER_EARLY" = 0 ]; then offset=$(log_size "$OPENWORK_ENGINE_LOG"); fi
start_detached engine "$OPENWORK_ENGINE_LOG" "$RUNTIME_DIR/opencode" serve --hostname 127.0.0.1 --port "$OPENWORK_ENGINE_PORT" || {
  log "could not start the engine"
  exit 1
}
ENGINE_PID=$STARTED_PID
# Earlier starts' run directories (a day old), swept beside the engine's boot, detached like a component.
( (find "$OPENWORK_PERSIST/$PERSIST_STATE/entrypoint" -mindepth 1 -maxdepth 1 -type d -mtime +1 -exec rm -rf {} + 2>/dev/null) & )

if [ "$SERVER_EARLY" = 1 ]; then
  OPENWORK_ENGINE_PID=$ENGINE_PID
  OPENWORK_ENGINE_BOOTING=1
  OPENWORK_ENGINE_EXIT_FILE=$RUN_DIR/engine.exit
  export OPENWORK_ENGINE_PID OPENWORK_ENGINE_BOOTING OPENWORK_ENGINE_EXIT_FILE
  trap - INT TERM HUP
  log "starting the runtime server on $OPENWORK_SERVER_HOST:$OPENWORK_SERVER_PORT while the engine boots"
  exec "$RUNTIME_DIR/node" "$RUNTIME_DIR/openwork-server.mjs" serve
fi

wait_healthy engine "$ENGINE_PID" "http://127.0.0.1:$OPENWORK_ENGINE_PORT/global/health" "$OPENWORK_ENGINE_LOG" "$offset" \
  --basic-auth-env OPENCODE_SERVER_PASSWORD --user-env OPENCODE_SERVER_USERNAME
log "engine healthy (pid $ENGINE_PID)"
OPENWORK_ENGINE_PID=$ENGINE_PID
export OPENWORK_ENGINE_PID

if [ "$OPENWORK_ROUTER_ENABLED" = 1 ]; then
  if [ ! -x "$RUNTIME_DIR/opencode-router" ]; then log "the router is enabled but $RUNTIME_DIR/opencode-router is missing"; stop_children; exit 1; fi
  log "starting the router (health on 127.0.0.1:$OPENWORK_ROUTER_HEALTH_PORT)"
  offset=$(log_size "$OPENWORK_ROUTER_LOG")
  start_detached router "$OPENWORK_ROUTER_LOG" env OPENCODE_URL="http://127.0.0.1:$OPENWORK_ENGINE_PORT" \
    OPENCODE_ROUTER_HEALTH_PORT="$OPENWORK_ROUTER_HEALTH_PORT" "$RUNTIME_DIR/opencode-router" serve "$OPENWORK_WORKSPACE" || {
    log "could not start the router"
    stop_children
    exit 1
  }
  ROUTER_PID=$STARTED_PID
  wait_healthy router "$ROUTER_PID" "http://127.0.0.1:$OPENWORK_ROUTER_HEALTH_PORT/health" "$OPENWORK_ROUTER_LOG" "$offset"
  log "router healthy (pid $ROUTER_PID)"
  OPENWORK_ROUTER_PID=$ROUTER_PID
  OPENWORK_ROUTER_LOG=$OPENWORK_ROUTER_LOG
  export OPENWORK_ROUTER_PID OPENWORK_ROUTER_LOG
fi

trap - INT TERM HUP
log "starting the runtime server on $OPENWORK_SERVER_HOST:$OPENWORK_SERVER_PORT"
exec "$RUNTIME_DIR/node" "$RUNTIME_DIR/openwork-server.mjs" serve
