#!/usr/bin/env bash
# The proof experiment behind docs/results.md and docs/results.json: SmolLM2-135M before and
# after fcsft's data, on the test part of BFCL's simple_python, multiple, parallel and
# irrelevance (every choice was made on the dev part), fcsft's own three layers, and MMLU.
# The base model is asked in three forms (fcsft's tagged protocol, BFCL's own prompting form,
# and the latter with three worked examples); the tuned model is trained with three seeds.
# Every step resumes where it stopped and skips what is already done. Each command is logged,
# as run, with its wall time in $RUN/commands.jsonl: the page's Commands block and the time
# the run took are read from there.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN=${RUN:-runs/bfcl-smollm2}
SEEDS=(0 1 2)
FORMS=(tagged bfcl bfcl-fewshot)
BFCL=(--bfcl simple_python --bfcl multiple --bfcl parallel --bfcl irrelevance --split test
      --max-tokens 160)
MMLU=(--mmlu 1000)
mkdir -p "$RUN"

run() {  # run one command and log it: argv, start time, wall seconds, exit status
  local started status=0
  started=$(date +%s.%N)
  "$@" || status=$?
  python - "$started" "$status" "$@" >> "$RUN/commands.jsonl" <<'EOF'
import json, sys, time
started, status, argv = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
print(json.dumps({"argv": argv, "started": when, "wall_s": round(time.time() - started, 1),
                  "exit": status}))
EOF
  return "$status"
}

protocol() {  # the --protocol of a base form
  if [ "$1" = tagged ]; then echo native; else echo "$1"; fi
}

run python examples/bfcl-smollm2/build.py --run-dir "$RUN" --near-miss 200 --sibling-miss 120 \
  --decline "No function on offer does what this asks, so I have not called one."
for seed in "${SEEDS[@]}"; do
  run fcsft train --data "$RUN/export/train.openai.jsonl" --out "$RUN/train-s$seed" \
    --config examples/bfcl-smollm2/project.yaml --seed "$seed"
done
run fcsft eval --model local:smollm2 "${BFCL[@]}" "${MMLU[@]}" --out "$RUN/eval-base-tagged"
for form in bfcl bfcl-fewshot; do
  run fcsft eval --model local:smollm2 "${BFCL[@]}" --protocol "$(protocol "$form")" \
    --out "$RUN/eval-base-$form"
done
run fcsft eval --model local:smollm2 --items "$RUN/testset.jsonl" --max-tokens 160 \
  --out "$RUN/layers-base"
for seed in "${SEEDS[@]}"; do
  run fcsft eval --model "$RUN/train-s$seed/model" "${BFCL[@]}" "${MMLU[@]}" \
    --out "$RUN/eval-tuned-s$seed"
  run fcsft eval --model "$RUN/train-s$seed/model" --items "$RUN/testset.jsonl" \
    --max-tokens 160 --out "$RUN/layers-tuned-s$seed"
  for form in "${FORMS[@]}"; do
    run fcsft eval compare "$RUN/eval-base-$form" "$RUN/eval-tuned-s$seed" \
      --out "$RUN/compare-$form-s$seed"
  done
  run fcsft eval compare "$RUN/layers-base" "$RUN/layers-tuned-s$seed" \
    --out "$RUN/compare-layers-s$seed"
done
run python examples/bfcl-smollm2/results.py "$RUN"
