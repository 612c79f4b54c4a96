#!/usr/bin/env bash
# The proof experiment behind docs/results.md: SmolLM2-135M before and after fcsft's data,
# on BFCL (simple, multiple, parallel, irrelevance), fcsft's own three layers and MMLU.
# CPU only; every step resumes where it stopped and skips what is already done.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN=${RUN:-runs/bfcl-smollm2}
BFCL=(--bfcl simple_python --bfcl multiple --bfcl parallel --bfcl irrelevance --bfcl-limit 100
      --max-tokens 160 --mmlu 200)
python examples/bfcl-smollm2/build.py --run-dir "$RUN" --near-miss 200 --sibling-miss 120 \
  --decline "No function on offer does what this asks, so I have not called one."
fcsft train --data "$RUN/export/train.openai.jsonl" --out "$RUN/train" \
  --config examples/bfcl-smollm2/project.yaml
fcsft eval --model local:smollm2 "${BFCL[@]}" --out "$RUN/eval-base"
fcsft eval --model "$RUN/train/model" "${BFCL[@]}" --out "$RUN/eval-tuned"
fcsft eval --model local:smollm2 --items "$RUN/testset.jsonl" --max-tokens 160 --out "$RUN/layers-base"
fcsft eval --model "$RUN/train/model" --items "$RUN/testset.jsonl" --max-tokens 160 \
  --out "$RUN/layers-tuned"
fcsft eval compare "$RUN/eval-base" "$RUN/eval-tuned" --out "$RUN/compare-bfcl"
fcsft eval compare "$RUN/layers-base" "$RUN/layers-tuned" --out "$RUN/compare-layers"
mkdir -p docs
python examples/bfcl-smollm2/results.py "$RUN" > docs/results.md
