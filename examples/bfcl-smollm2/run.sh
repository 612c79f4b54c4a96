#!/usr/bin/env bash
# The proof experiment behind docs/results.md and docs/results.json: SmolLM2-135M before and
# after fcsft's data, on the test part of BFCL's simple_python, multiple, parallel and
# irrelevance (every choice was made on the dev part), fcsft's own three layers, and MMLU.
# The base model is asked in three forms (fcsft's tagged protocol, BFCL's own prompting form,
# and the latter with three worked examples); the tuned model is trained with three seeds.
# The step count and the call bias (a decoding setting: `fcsft eval --call-bias`) are chosen
# on the dev part: seed 0's model at each snapshot step of its schedule (project.yaml) is scored
# on dev with each bias in BIASES and choose.py picks a pair by its stated rule; every seed's
# model at that step is then scored once on the test part with that bias (seeds 1 and 2 follow
# seed 0's schedule and stop at that step, which is the same model a full run's snapshot would be).
# Every step resumes where it stopped and skips what is already done; UNTIL=dev stops after
# the dev study, ONLY=base runs the base model's evaluations alone. The whole run takes longer
# than a working session on a 2-core machine: to go on elsewhere, `keep.py $RUN` copies what is
# done (adapters, markers, predictions) into kept/ for a commit, and `keep.py $RUN --restore`
# there puts it back before run.sh starts again (see keep.py). Each command is logged, as run,
# with its wall time in $RUN/commands.jsonl (log.sh), a command cut off too: the page's
# Commands block and the time the run took are read from there.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN=${RUN:-runs/bfcl-smollm2}
SEEDS=(0 1 2)
FORMS=(tagged bfcl bfcl-fewshot)
BFCL=(--bfcl simple_python --bfcl multiple --bfcl parallel --bfcl irrelevance --split test
      --max-tokens 160)
DEV=(--bfcl simple_python --bfcl multiple --bfcl parallel --bfcl irrelevance --split dev
     --max-tokens 160)
MMLU=(--mmlu 1000)
# call biases tried on dev, 0 first: the others share its replies (--replies) and generate only
# those whose call choice they flip
BIASES=(0 -0.5 -0.75 -1 -1.25 -1.5 -1.75 -2)
CONFIG=examples/bfcl-smollm2/project.yaml
mkdir -p "$RUN"

source examples/bfcl-smollm2/log.sh  # run CMD...: runs and logs one command

protocol() {  # the --protocol of a base form
  if [ "$1" = tagged ]; then echo native; else echo "$1"; fi
}

model_at() {  # the model of a seed at the chosen step: seed 0's snapshot there (or its last
  # step's model); the other seeds stop at that step, so theirs is model/. A LoRA model is named
  # by its adapter: the part keep.py commits, so a run carried to another machine asks the same
  # model under the same name
  local last folder
  last=$(python -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['train']['steps'])" "$CONFIG")
  if [ "$1" != 0 ] || [ "$2" = "$last" ]; then folder=$RUN/train-s$1/model
  else folder=$RUN/train-s$1/model-step-$2; fi
  if [ -d "$folder/adapter" ]; then echo "local:$folder/adapter"; else echo "local:$folder"; fi
}

run python examples/bfcl-smollm2/build.py --run-dir "$RUN" --near-miss 200 --sibling-miss 120 --pairs 150 \
  --among 250 --python-tasks --decline "No function on offer does what this asks, so I have not called one."
base() {  # the base model's evaluations of the test part (BFCL and MMLU depend on no choice
  # made on dev; the layers' items come from the build)
  run fcsft eval --model local:smollm2 "${BFCL[@]}" "${MMLU[@]}" --out "$RUN/eval-base-tagged"
  for form in bfcl bfcl-fewshot; do
    run fcsft eval --model local:smollm2 "${BFCL[@]}" --protocol "$(protocol "$form")" \
      --out "$RUN/eval-base-$form"
  done
  run fcsft eval --model local:smollm2 --items "$RUN/testset.jsonl" --max-tokens 160 \
    --out "$RUN/layers-base"
}
if [ "${ONLY:-}" = base ]; then  # ONLY=base: the base's evaluations alone (a session's spare
  base                           # time spent on them; a later run skips them)
  exit 0
fi
train() {  # a seed's run; any further arguments go to fcsft train
  local seed=$1
  shift
  run fcsft train --data "$RUN/export/train.openai.jsonl" --out "$RUN/train-s$seed" \
    --config "$CONFIG" --seed "$seed" "$@"
}

train 0
for step in $(python -c "import sys, yaml; t = yaml.safe_load(open(sys.argv[1]))['train']; print(*t.get('snapshots', []), t['steps'])" "$CONFIG"); do
  for bias in "${BIASES[@]}"; do
    name=step-$step
    if [ "$bias" != 0 ]; then name=$name-bias$bias; fi
    run fcsft eval --model "$(model_at 0 "$step")" "${DEV[@]}" --call-bias "$bias" \
      --replies "$RUN/dev/replies-step-$step.sqlite" --out "$RUN/dev/$name"
  done
done
# the choice, with the recipe it was made for, is also kept in the repository (tried/)
CHOICE=$(python examples/bfcl-smollm2/choose.py "$RUN" \
  --keep "examples/bfcl-smollm2/tried/$(basename "$RUN").json")
read -r STEP BIAS <<< "$CHOICE"
if [ "${UNTIL:-}" = dev ]; then  # UNTIL=dev: the dev study alone
  echo "chosen on dev: step $STEP, call bias $BIAS ($RUN/dev/choice.json)"
  exit 0
fi
for seed in "${SEEDS[@]:1}"; do  # the same schedule as seed 0's, ended at the chosen step
  train "$seed" --stop-at "$STEP"
done
base
for seed in "${SEEDS[@]}"; do
  run fcsft eval --model "$(model_at "$seed" "$STEP")" "${BFCL[@]}" "${MMLU[@]}" \
    --call-bias "$BIAS" --out "$RUN/eval-tuned-s$seed"
  run fcsft eval --model "$(model_at "$seed" "$STEP")" --items "$RUN/testset.jsonl" \
    --max-tokens 160 --call-bias "$BIAS" --out "$RUN/layers-tuned-s$seed"
  for form in "${FORMS[@]}"; do
    run fcsft eval compare "$RUN/eval-base-$form" "$RUN/eval-tuned-s$seed" \
      --out "$RUN/compare-$form-s$seed"
  done
  run fcsft eval compare "$RUN/layers-base" "$RUN/layers-tuned-s$seed" \
    --out "$RUN/compare-layers-s$seed"
done
run python examples/bfcl-smollm2/results.py "$RUN"
# what the page is generated from, with the tested adapters, into the repository (kept/)
run python examples/bfcl-smollm2/keep.py "$RUN"
