# run.sh's command log, sourced by it: `run CMD...` runs one command and appends to
# $RUN/commands.jsonl its argv, start time, wall seconds and exit status. While it runs, its
# time so far is rewritten every $BEAT seconds into $RUN/running.json, so a command cut off
# (a working session ends, the machine stops) still counts: the next `run` moves that record
# into the log, marked cut_off, before it starts. The page's Commands block and the time the
# run took are read from the log.

BEAT=${BEAT:-30}

log_entry() {  # one log line: STARTED STATUS ARGV... (STATUS "cut": still running)
  python - "$@" <<'PY'
import json, sys, time
started, status, argv = float(sys.argv[1]), sys.argv[2], sys.argv[3:]
entry = {"argv": argv, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
         "wall_s": round(time.time() - started, 1)}
entry |= {"exit": None, "cut_off": True} if status == "cut" else {"exit": int(status)}
print(json.dumps(entry))
PY
}

run() {
  local started status=0 beat
  if [ -f "$RUN/running.json" ]; then  # the last command was cut off: log the time it had run
    cat "$RUN/running.json" >> "$RUN/commands.jsonl"
    rm "$RUN/running.json"
  fi
  started=$(date +%s.%N)
  (
    while sleep "$BEAT"; do
      log_entry "$started" cut "$@" > "$RUN/running.json.new"
      mv "$RUN/running.json.new" "$RUN/running.json"
    done
  ) &
  beat=$!
  "$@" || status=$?
  kill "$beat" 2> /dev/null || true
  wait "$beat" 2> /dev/null || true
  rm -f "$RUN/running.json" "$RUN/running.json.new"
  log_entry "$started" "$status" "$@" >> "$RUN/commands.jsonl"
  return "$status"
}
