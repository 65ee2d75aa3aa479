#!/bin/bash
# The fluidfall DPI-Net recipe of docs/results/particles.md (sessions 24-33) as one resumable pipeline.
#
#   particles_recipe.sh inputs          data (train/valid seed 1723, dev 2718) and the shipped models' dev bench
#   particles_recipe.sh round1 S        round 1 (init seed S) alone, then its start (or "no start"); validation only
#   particles_recipe.sh seed S          round 1 (init seed S) -> contained start -> declared -> fine-tune -> dev gate
#   particles_recipe.sh noise N1,N2 S1 S2 S3   of finished round-1 runs at noises N1, N2,...: the noise with the most
#                                       seeds that have a contained epoch (ties to the first listed); validation only
#   particles_recipe.sh heldout S1 S2 S3   the one read of the fresh seed (refuses unless all three gates passed)
#
# Every step skips what its files say is done and resumes a training run that was cut (`--resume`, bit for
# bit), so after a kill the same command goes on.  Environment: P (data and runs, default ./fluidfall_recipe),
# CODE (the code the runs import, default this checkout), NESY and PY (the commands), HELDOUT_SEED (15488),
# DRY=1 (print the commands, run nothing; decisions read as placeholders), START_RULE=fallback (a run with no
# contained round-1 epoch starts from the one least past the limit, session 28's ranking; its files and gate
# are tagged `L`, beside the default rule's), R1_NOISE (round 1's input noise in m, default 0.001, session 15's;
# any other value tags the runs and gate `nS.SSS`, e.g. runs/r1s8n0.002, beside the default's; the fine-tune keeps
# 0.001).  One thread everywhere.
set -euo pipefail

P=${P:-$PWD/fluidfall_recipe}
CODE=${CODE:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
NESY=${NESY:-nesy}
PY=${PY:-python}
HELDOUT_SEED=${HELDOUT_SEED:-15488}
HELPER="$CODE/docs/results/particles_recipe.py"
case "${START_RULE:=contained}" in contained) L=""; FALLBACK="" ;; fallback) L=L; FALLBACK=--fallback ;;
    *) echo "START_RULE must be contained or fallback, got $START_RULE" >&2; exit 2 ;; esac
# noise_tag WHAT N: N checked (a decimal in (0, 1)), then the tag its runs carry ("" for the default 0.001)
noise_tag() {
    [[ "$2" =~ ^0\.[0-9]*[1-9][0-9]*$ ]] || { echo "$1 must be a decimal in (0, 1) like 0.002, got '$2'" >&2; return 2; }
    if [ "$2" = 0.001 ]; then echo ""; else echo "n$2"; fi
}
R1_NOISE=${R1_NOISE:-0.001}
N=$(noise_tag R1_NOISE "$R1_NOISE") || exit 2
export PYTHONPATH=$CODE OMP_NUM_THREADS=1 NESY_TAICHI_THREADS=1

R1_EPOCHS=5   # session 15's round 1: 5 x 2,400 samples, lr 1e-3 -> 3e-5
FT_EPOCHS=5   # particles5's moving-average fine-tune
FT_NOISE=0.001   # the fine-tune's input noise (particles5's), whatever round 1's
START_LIMIT=0.1   # a round-1 epoch is a start only within 10% raw outside on the 16 validation rollouts (session 28)
MODEL="--set hidden=32 --set graph.radius=0.025 --set graph.wall_box=0.04 --set share_weights=false
       --set graph.roots_per_instance=0 --set propagation_steps=2 --set shape_matching=false"
R1="--world fluidfall --model dpinet --data $P/ff --epochs $R1_EPOCHS --max-samples 2400 --valid-samples 60 --batch-size 4
    --lr 1e-3 --lr-final 3e-5 --select-rollouts 16 --select-max-outside $START_LIMIT --keep-epochs --threads 1 --device cpu"
FT="--world fluidfall --model dpinet --data $P/ff --epochs $FT_EPOCHS --max-samples 300 --valid-samples 60 --batch-size 4
    --lr 1e-4 --lr-final 3e-5 --lr-warmup 75 --ema-decay 0.99 --select-rollouts 8 --select-max-outside 0.1
    --rollout-steps 6 --sample-from 30 --rebuild-edges --wall-penalty 1 --own-rollouts 10 --own-samples 2
    --keep-epochs --threads 1 --device cpu --set wall_projection=true"
BENCH="--world fluidfall --models dpinet --horizons 1,10,30,60 --skip-replay --no-gif --threads 1"

say() { echo "[$(date -u +%H:%M:%S)] $*"; }

# run NAME CMD...: print the command; unless DRY, run it with its CPU time appended to $P/logs/NAME.time
run() {
    local name=$1; shift
    echo "+ $*"
    [ -n "${DRY:-}" ] && return 0
    /usr/bin/time -v -a -o "$P/logs/$name.time" "$@"
}

helper() {
    if [ -n "${DRY:-}" ]; then echo "<$PY $HELPER $*>"; return 0; fi
    "$PY" "$HELPER" "$@"
}

# train NAME RUN_DIR EPOCHS ARGS...: a training run to its last epoch, resumed if it was cut
train() {
    local name=$1 dir=$2 epochs=$3; shift 3
    local done; done=$(helper epochs "$dir")
    if [ -z "${DRY:-}" ] && [ "$done" -ge "$epochs" ]; then say "$name: $done epochs logged, done"; return 0; fi
    local resume=""
    [ -z "${DRY:-}" ] && [ -f "$dir/checkpoint.pt" ] && resume="--resume"
    run "$name" $NESY train dynamics "$@" --out "$dir" $resume
}

# write_json PATH TEXT: atomic
write_json() { [ -n "${DRY:-}" ] && return 0; local tmp; tmp=$(mktemp "$1.XXXX"); echo "$2" > "$tmp"; mv "$tmp" "$1"; }

inputs() {
    run gen_dev $NESY data dynamics --world fluidfall --n 10 --seed 2718 --split test --out "$P/dev/fluidfall"
    run gen_valid $NESY data dynamics --world fluidfall --n 16 --seed 1723 --split valid --out "$P/ff"
    run gen_train $NESY data dynamics --world fluidfall --n 30 --seed 1723 --split train --out "$P/ff"
    [ -f "$P/res/dev_shipped.json" ] || run bench_shipped $NESY bench dynamics --world fluidfall --data "$P/dev/fluidfall" \
        --models in,dpinet --horizons 1,10,30,60 --skip-replay --no-gif --threads 1 --out "$P/res/dev_shipped.json"
}

# round1 S: the round-1 run of init seed S at R1_NOISE, to its last epoch
round1() {
    local S=$1
    train r1s$S$N "$P/runs/r1s$S$N/fluidfall_dpinet" $R1_EPOCHS $R1 $MODEL --set noise_std=$R1_NOISE --seed "$S"
}

seed() {
    local S=$1 T=$1$N$L gate="$P/res/gate_s$1$N$L.json"
    [ -f "$gate" ] && { say "seed $T: gate already decided ($gate)"; cat "$gate"; return 0; }
    local r1="$P/runs/r1s$S$N/fluidfall_dpinet" decl="$P/decl/r1s$T" ft="$P/runs/ft$T"
    round1 "$S"
    local start rc=0
    start=$(helper start "$r1" --epochs $R1_EPOCHS --limit $START_LIMIT $FALLBACK) || rc=$?
    if [ $rc -eq 3 ]; then
        say "seed $S: $start"
        write_json "$gate" "{\"tag\": \"s$T\", \"pass\": false, \"why\": \"no round-1 epoch within $START_LIMIT raw outside\"}"
        return 0
    elif [ $rc -ne 0 ]; then return $rc; fi
    say "seed $T: start $start"
    if [ -n "${DRY:-}" ] || [ ! -f "$decl/fluidfall_dpinet.pt" ]; then
        run decl_s$T $PY -c "import sys; from physics.models import declare_model
declare_model(sys.argv[1], sys.argv[2], note='particles_recipe.sh start of seed $T', wall_projection=True)" \
            "$start" "$decl/fluidfall_dpinet.pt"
    fi
    train ft$T "$ft/fluidfall_dpinet" $FT_EPOCHS $FT $MODEL --set noise_std=$FT_NOISE --seed "$S" \
        --init "$decl/fluidfall_dpinet.pt"
    run dev_s$T $NESY bench dynamics $BENCH --data "$P/dev/fluidfall" --checkpoints "$ft" --out "$P/res/dev_ft$T.json"
    run devraw_s$T $NESY bench dynamics $BENCH --data "$P/dev/fluidfall" --checkpoints "$ft" --no-wall-projection \
        --out "$P/res/devraw_ft$T.json"
    run cmp_s$T $NESY bench compare --a "$P/res/dev_ft$T.json:dpinet" --b "$P/res/dev_shipped.json:in" \
        --out "$P/res/cmp_dev_ft${T}_vs_shippedin.json"
    helper gate "s$T" --compare "$P/res/cmp_dev_ft${T}_vs_shippedin.json" --raw "$P/res/devraw_ft$T.json" --out "$gate"
}

heldout() {
    [ $# -eq 3 ] || { echo "heldout: give the three training seeds" >&2; return 2; }
    local S
    for S in "$@"; do
        if [ -z "${DRY:-}" ] && ! "$PY" -c "import json, sys; sys.exit(0 if json.load(open(sys.argv[1]))['pass'] else 1)" \
            "$P/res/gate_s$S$N.json" 2>/dev/null; then
            echo "heldout: seed $S$N has no passed dev gate ($P/res/gate_s$S$N.json): $HELDOUT_SEED is not read" >&2; return 2
        fi
    done
    local H="$P/heldout"
    if [ -z "${DRY:-}" ]; then
        [ -e "$H/READ" ] && { echo "heldout: $HELDOUT_SEED was read already ($H/READ): no second read" >&2; return 2; }
        mkdir -p "$H"; date -u > "$H/READ"
    fi
    run ho_gen $NESY data dynamics --world fluidfall --n 10 --seed "$HELDOUT_SEED" --split test --out "$H/fluidfall"
    run ho_shipped $NESY bench dynamics --world fluidfall --data "$H/fluidfall" --models in,dpinet --horizons 1,10,30,60 \
        --skip-replay --no-gif --threads 1 --out "$P/res/ho_shipped.json"
    local compares=() raws=() pooled=()
    local T
    for S in "$@"; do
        T=$S$N
        run ho_s$T $NESY bench dynamics $BENCH --data "$H/fluidfall" --checkpoints "$P/runs/ft$T" --out "$P/res/ho_ft$T.json"
        run horaw_s$T $NESY bench dynamics $BENCH --data "$H/fluidfall" --checkpoints "$P/runs/ft$T" --no-wall-projection \
            --out "$P/res/horaw_ft$T.json"
        run hocmp_s$T $NESY bench compare --a "$P/res/ho_ft$T.json:dpinet" --b "$P/res/ho_shipped.json:in" \
            --out "$P/res/cmp_ho_ft${T}_vs_shippedin.json"
        compares+=("$P/res/cmp_ho_ft${T}_vs_shippedin.json"); raws+=("$P/res/horaw_ft$T.json"); pooled+=("$P/res/ho_ft$T.json:dpinet")
    done
    run hocmp_pooled $NESY bench compare --a "${pooled[@]}" --b "$P/res/ho_shipped.json:in" --out "$P/res/cmp_ho_pooled.json"
    helper heldout --compares "${compares[@]}" --pooled "$P/res/cmp_ho_pooled.json" --raws "${raws[@]}" \
        --out "$P/res/heldout_verdict.json"
    echo "part (d) by hand: the kept model.pt of the seed with the lowest dev A/B in physics/models/checkpoints,"
    echo "  nesy bench all --quick --suites dynamics-fluidfall --threads 1; tests/physics/test_models_checkpoints.py"
}

# noise N1,N2,... S1 S2 S3: the round-1 noise by validation containment (decided by particles_recipe.py noise)
noise() {
    local list=$1 S n; shift
    local args=()
    for n in ${list//,/ }; do
        local tag; tag=$(noise_tag "noise: a noise" "$n") || return 2
        args+=(--candidate "$n")
        for S in "$@"; do args+=("$P/runs/r1s$S$tag/fluidfall_dpinet"); done
    done
    local seeds; seeds=$(IFS=_; echo "$*")
    helper noise "${args[@]}" --epochs $R1_EPOCHS --limit $START_LIMIT --out "$P/res/noise_${list//,/_}_s$seeds.json"
}

# every seed a non-negative integer, checked before anything is made
seeds_ok() { local s; for s in "$@"; do [[ "$s" =~ ^[0-9]+$ ]] || { echo "$0: a seed must be a non-negative integer, got '$s'" >&2; exit 2; }; done; }
case "${1:-}" in
    inputs) [ $# -eq 1 ] || { echo "usage: $0 inputs" >&2; exit 2; } ;;
    seed|round1) [ $# -eq 2 ] || { echo "usage: $0 $1 S" >&2; exit 2; }; seeds_ok "$2" ;;
    heldout) [ $# -eq 4 ] || { echo "usage: $0 heldout S1 S2 S3" >&2; exit 2; }; seeds_ok "${@:2}" ;;
    noise) [ $# -ge 3 ] || { echo "usage: $0 noise N1,N2 S1 S2 ..." >&2; exit 2; }; seeds_ok "${@:3}" ;;
    *) echo "usage: $0 inputs | round1 S | seed S | noise N1,N2 S1 S2 ... | heldout S1 S2 S3" >&2; exit 2 ;;
esac
mkdir -p "$P/logs" "$P/res" "$P/runs" "$P/decl"
case "$1" in
    inputs) inputs ;;
    round1) round1 "$2"
        if [ -z "${DRY:-}" ]; then helper start "$P/runs/r1s$2$N/fluidfall_dpinet" --epochs $R1_EPOCHS --limit $START_LIMIT \
            || [ $? -eq 3 ]; fi ;;
    seed) seed "$2" ;;
    noise) shift; noise "$@" ;;
    heldout) shift; heldout "$@" ;;
esac
