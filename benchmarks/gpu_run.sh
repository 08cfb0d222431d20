#!/usr/bin/env bash
# The one command a GPU slot runs (issue 20): benchmarks/gpu_run.sh OUT_DIR
#
# On a bare GPU machine (python3 with torch, h5py, click, scipy, pandas, matplotlib, tqdm, pytest;
# no zlib-ng, google-crc32c or protobuf: their wheels are in benchmarks/wheels; no network), from a
# copy of this repository, within GPU_RUN_MINUTES (default 8):
#   a) the CUDA test suite (pytest -m cuda), skipped when it passed for the same code;
#   b) the speed figures (bench_maml at the MultiDigitMNIST preset's shape, 20-way and 84x84,
#      fp32/TF32/bf16, every execution path beside its floor; ProtoNets; LITE's CUDA memory; how
#      busy the GPU was, from nvidia-smi dmon), skipped when committed for the same code;
#   b2) LITE's whole-run CUDA memory (bench_lite_run.py --device cuda, 224x224, 10 and 100 shots),
#      skipped when measured for the same code;
#   c) the Multi-digit MNIST table's cells, each resumed from benchmarks/results/gpu/<cell>/ until
#      a deadline that leaves a minute to pack.
# Everything lands in benchmarks/results/gpu/ of the machine's copy and is packed into
# OUT_DIR/gpu_run.tar.gz (extract it with: tar -xzf gpu_run.tar.gz -C benchmarks/results/gpu);
# OUT_DIR also gets gpu_run.log and summary.md, three files in all (the device tool returns 8).
#
# Environment: GPU_RUN_MINUTES (8), GPU_RUN_DEVICE (cuda; cpu = a dry run of the logic here:
# tiny shapes, nothing CUDA, results under OUT_DIR/work), GPU_RUN_SPEED (auto|force|skip),
# GPU_RUN_TESTS (auto|force|skip), GPU_RUN_LITE_RUN (auto|force|skip), GPU_RUN_CELLS (cell names, space-separated; default all eight
# in the table's order), GPU_RUN_CELL_ARGS (extra `fsbench run` flags; the dry run's tiny data).
set -uo pipefail

OUT_DIR=${1:?usage: benchmarks/gpu_run.sh OUT_DIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MINUTES=${GPU_RUN_MINUTES:-8}
DEVICE=${GPU_RUN_DEVICE:-cuda}
PY=${PYTHON:-python3}
START=$(date +%s)
DEADLINE=$((START + ${MINUTES%.*} * 60))
PACK_SECONDS=60
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
WORK=${GPU_RUN_WORK:-/tmp/gpu_run_work}
mkdir -p "$WORK"
LOG="$OUT_DIR/gpu_run.log"
exec > >(tee -a "$LOG") 2>&1

if [ "$DEVICE" = cpu ]; then
    RESULTS=${GPU_RUN_RESULTS:-$OUT_DIR/work/results-gpu}
    DRY=1
else
    RESULTS=${GPU_RUN_RESULTS:-$ROOT/benchmarks/results/gpu}
    DRY=0
fi
say() { echo "[gpu_run $(date -u +%H:%M:%S), $(( $(date +%s) - START )) s] $*"; }
left() { echo $((DEADLINE - $(date +%s))); }
cap() { # cap SECONDS: the smaller of SECONDS and the time left before the packing minute
    local room=$(($(left) - PACK_SECONDS))
    if [ "$1" -lt "$room" ]; then echo "$1"; else echo "$((room > 0 ? room : 0))"; fi
}

# ---- Python: our three packages from the tree, zlib-ng from the committed wheel if missing ----
export PYTHONPATH="$ROOT/packages/fsbench/src:$ROOT/packages/mdmnist/src:$ROOT/packages/mnist1d/src"
# (and google-crc32c + protobuf: Meta-Dataset's records and their test fixtures, test_cuda_api.py)
WHEELS=()
"$PY" -c "import zlib_ng" 2>/dev/null || WHEELS+=("$ROOT"/benchmarks/wheels/zlib_ng-*cp312*.whl)
"$PY" -c "import google_crc32c" 2>/dev/null || WHEELS+=("$ROOT"/benchmarks/wheels/google_crc32c-*cp312*.whl)
"$PY" -c "import google.protobuf" 2>/dev/null || WHEELS+=("$ROOT"/benchmarks/wheels/protobuf-*abi3*.whl)
if [ "${#WHEELS[@]}" -gt 0 ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" "${WHEELS[@]}" \
        || { say "cannot install ${WHEELS[*]}"; exit 1; }
    export PYTHONPATH="$PYTHONPATH:$WORK/site"
fi
export PYTHONUNBUFFERED=1 FSBENCH_DATA="$WORK/data" MPLBACKEND=Agg
PLATFORM=$("$PY" -c "import fsbench, mdmnist, mnist1d, zlib_ng, torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')") || exit 1
echo "$PLATFORM"
if [ "$DRY" = 0 ] && [ "${PLATFORM%no CUDA}" != "$PLATFORM" ]; then
    say "no CUDA GPU here: run GPU_RUN_DEVICE=cpu for a dry run of the logic"
    exit 1
fi
mkdir -p "$RESULTS/speed"
if [ "$DRY" = 0 ]; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv || true
fi

# A key of the code a step measures: a step committed for the same key is not run again.
code_key() {
    (cd "$ROOT" && cat "$@" 2> /dev/null; echo "$PLATFORM") | sha256sum | cut -c1-16
}
FSB=packages/fsbench/src/fsbench
TEST_KEY=$(code_key $(cd "$ROOT" && find "$FSB" tests/fsbench -name '*.py' | LC_ALL=C sort))
SPEED_KEY=$(code_key $FSB/methods/maml.py $FSB/methods/maml_graph.py $FSB/methods/step_cost.py \
    $FSB/methods/base.py $FSB/methods/protonet.py $FSB/methods/lite.py $FSB/models/conv4.py \
    $FSB/data/store.py $FSB/engine/device.py benchmarks/bench_maml.py benchmarks/bench_protonet.py \
    benchmarks/bench_lite.py)
say "device $DEVICE, $MINUTES min, results in $RESULTS, test key $TEST_KEY, speed key $SPEED_KEY"

# ---- a) the CUDA test suite ------------------------------------------------------------------
run_tests() {
    local t
    t=$(cap 150)
    if [ "$t" -le 5 ]; then say "a) CUDA tests: no time left"; return; fi
    say "a) CUDA tests (timeout $t s)"
    (cd "$ROOT" && timeout -k 5 "$t" "$PY" -m pytest -q -p no:cacheprovider -m cuda -rs \
        tests/fsbench/test_cuda.py tests/fsbench/test_cuda_api.py tests/fsbench/test_engine.py) \
        > "$RESULTS/tests.txt" 2>&1
    local rc=$?
    echo "exit $rc, code key $TEST_KEY" >> "$RESULTS/tests.txt"
    tail -n 3 "$RESULTS/tests.txt"
}
TESTS_MODE=${GPU_RUN_TESTS:-auto}
if [ "$TESTS_MODE" = skip ]; then
    say "a) CUDA tests skipped (GPU_RUN_TESTS=skip)"
elif [ "$TESTS_MODE" = auto ] && [ -f "$RESULTS/tests.txt" ] &&
    grep -q "^exit 0, code key $TEST_KEY\$" "$RESULTS/tests.txt"; then
    say "a) CUDA tests passed before for this code ($TEST_KEY): not run again"
else
    run_tests
fi

# ---- b) speed figures --------------------------------------------------------------------------
SPEED="$RESULTS/speed"
SPEED_BUDGET_END=$(($(date +%s) + 240))
bench() { # bench CAP_SECONDS NAME ARGS...: one benchmark, bounded by its cap and the speed budget
    local capsec=$1 name=$2
    shift 2
    local room=$((SPEED_BUDGET_END - $(date +%s)))
    [ "$room" -lt "$capsec" ] && capsec=$room
    capsec=$(cap "$capsec")
    if [ "$capsec" -le 5 ]; then
        say "   $name: no time left"
        SPEED_COMPLETE=0
        return
    fi
    say "   $name (timeout $capsec s)"
    if ! (cd "$ROOT" && timeout -k 5 "$capsec" "$PY" "$@") > "$SPEED/$name.log" 2>&1; then
        say "   $name stopped: exit $? (see speed/$name.log)"
        SPEED_COMPLETE=0
    fi
    tail -n 2 "$SPEED/$name.log"
}
SPEED_MODE=${GPU_RUN_SPEED:-auto}
if [ "$SPEED_MODE" = skip ]; then
    say "b) speed figures skipped (GPU_RUN_SPEED=skip)"
elif [ "$SPEED_MODE" = auto ] && [ "$(cat "$SPEED/code_key.txt" 2>/dev/null)" = "$SPEED_KEY" ]; then
    say "b) speed figures committed for this code ($SPEED_KEY): not run again"
    echo "not run: committed for code key $SPEED_KEY" > "$SPEED/SKIPPED"
else
    # figures of other code must not stand beside these: clear them all first
    rm -f "$SPEED"/*.json "$SPEED"/*.log "$SPEED"/*.png "$SPEED"/dmon.txt "$SPEED"/code_key.txt \
        "$SPEED/SKIPPED"
    SPEED_COMPLETE=1
    say "b) speed figures"
    DMON_PID=
    if [ "$DRY" = 0 ] && command -v nvidia-smi > /dev/null; then
        nvidia-smi dmon -s u -d 1 -o DT > "$SPEED/dmon.txt" 2>&1 &
        DMON_PID=$!
    fi
    if [ "$DRY" = 1 ]; then # the logic only: tiny shapes on the CPU
        SHAPE=(--devices cpu --hidden 8 --size 16 --meta-batch 2 --iters 1 --threads 1)
        bench 120 bench_maml_preset benchmarks/bench_maml.py "${SHAPE[@]}" --way 5 \
            --paths loop,vmap,auto --precisions fp32 --out "$SPEED/bench_maml_preset.json"
        bench 60 bench_protonet benchmarks/bench_protonet.py --devices cpu --size 16 --hidden 8 \
            --train-way 5 --iters 2 --eval-episodes 4 --out "$SPEED/bench_protonet.json"
        bench 90 bench_lite benchmarks/bench_lite.py --devices cpu --size 16 --hidden 8 \
            --shots 1 --lite-h 2 --steps 1 --out "$SPEED/bench_lite.json"
    else
        PRESET=(--devices cuda --hidden 64 --size 64 --way 5 --shot 1 --query 15 --meta-batch 12
            --iters 5 --min-seconds 2)
        bench 100 bench_maml_preset benchmarks/bench_maml.py "${PRESET[@]}" \
            --paths loop,vmap,graph,graph-vmap,auto --precisions fp32,tf32,bf16 \
            --out "$SPEED/bench_maml_preset.json"
        bench 35 bench_maml_20way benchmarks/bench_maml.py "${PRESET[@]}" --way 20 \
            --paths loop,vmap,graph,graph-vmap --precisions tf32 --out "$SPEED/bench_maml_20way.json"
        bench 35 bench_maml_84px benchmarks/bench_maml.py "${PRESET[@]}" --size 84 \
            --paths loop,vmap,graph,graph-vmap --precisions tf32 --out "$SPEED/bench_maml_84px.json"
        bench 25 bench_protonet benchmarks/bench_protonet.py --devices cuda \
            --out "$SPEED/bench_protonet.json"
        bench 45 bench_lite benchmarks/bench_lite.py --devices cuda --shots 10 100 \
            --out "$SPEED/bench_lite.json"
        bench 35 bench_maml_channels_last benchmarks/bench_maml.py "${PRESET[@]}" --channels-last \
            --paths loop,graph,graph-vmap --precisions tf32,bf16 --no-cost \
            --out "$SPEED/bench_maml_channels_last.json"
        bench 90 bench_maml_compile benchmarks/bench_maml.py "${PRESET[@]}" \
            --paths loop,compile --precisions tf32 --no-cost --out "$SPEED/bench_maml_compile.json"
    fi
    [ -n "$DMON_PID" ] && kill "$DMON_PID" 2> /dev/null
    # only a complete set is kept from being measured again
    [ "$SPEED_COMPLETE" = 1 ] && echo "$SPEED_KEY" > "$SPEED/code_key.txt"
fi

# ---- b2) LITE's whole-run memory (issue 24 item 5) ---------------------------------------------
# bench_lite_run.py on CUDA: torch.cuda.max_memory_allocated of whole `fsbench run protonet`
# processes (LITE H = 8, group norm) at 224x224, 10 and 100 shots; skipped when done for the code.
LITE_RUN="$RESULTS/lite_run"
LITE_RUN_KEY=$(code_key $FSB/methods/lite.py $FSB/methods/protonet.py $FSB/methods/base.py \
    $FSB/engine/run.py $FSB/engine/trainer.py $FSB/data/store.py benchmarks/bench_lite_run.py)
LITE_RUN_MODE=${GPU_RUN_LITE_RUN:-auto}
if [ "$LITE_RUN_MODE" = skip ]; then
    say "b2) LITE whole-run memory skipped (GPU_RUN_LITE_RUN=skip)"
elif [ "$LITE_RUN_MODE" = auto ] && [ "$(cat "$LITE_RUN/code_key.txt" 2>/dev/null)" = "$LITE_RUN_KEY" ]; then
    say "b2) LITE whole-run memory measured for this code ($LITE_RUN_KEY): not run again"
else
    mkdir -p "$LITE_RUN"
    rm -f "$LITE_RUN"/*.json "$LITE_RUN"/code_key.txt
    t=$(cap 150)
    if [ "$t" -le 30 ]; then
        say "b2) LITE whole-run memory: no time left"
    else
        if [ "$DRY" = 1 ]; then
            LITE_ARGS=(--device cpu --size 64 --shots 2 4)
        else
            LITE_ARGS=(--device cuda --size 224 --shots 10 100)
        fi
        say "b2) LITE whole-run memory (timeout $t s): ${LITE_ARGS[*]}"
        if (cd "$ROOT" && timeout -k 5 "$t" "$PY" benchmarks/bench_lite_run.py "${LITE_ARGS[@]}" \
            --out "$LITE_RUN/bench_lite_run.json") > "$LITE_RUN/bench_lite_run.log" 2>&1; then
            echo "$LITE_RUN_KEY" > "$LITE_RUN/code_key.txt"
        else
            say "   bench_lite_run stopped: exit $? (see lite_run/bench_lite_run.log)"
        fi
        tail -n 3 "$LITE_RUN/bench_lite_run.log"
    fi
fi

# ---- c) the table's cells ------------------------------------------------------------------------
ALL_CELLS="doublemnist-5w1s triplemnist-5w1s doublemnist-20w1s triplemnist-20w1s doublemnist-5w5s triplemnist-5w5s doublemnist-20w5s triplemnist-20w5s"
CELLS=${GPU_RUN_CELLS:-$ALL_CELLS}
if grep -rq --include='*.py' -- '--time-limit' "$ROOT/$FSB"; then
    HAS_TIME_LIMIT=1
else
    HAS_TIME_LIMIT=0
    say "c) this fsbench has no --time-limit: each cell is stopped by SIGTERM at the deadline"
fi
say "c) cells: $CELLS"
for cell in $CELLS; do
    dir="$RESULTS/$cell"
    if [ -f "$dir/result.json" ]; then
        say "   $cell finished before: skipped"
        continue
    fi
    room=$(($(left) - PACK_SECONDS))
    if [ "$room" -lt 45 ]; then
        say "   $cell: not started, $room s left before packing"
        break
    fi
    dataset=${cell%%-*}
    ws=${cell#*-}
    way=${ws%%w*}
    shot=${ws#*w}
    shot=${shot%s}
    limit=()
    [ "$HAS_TIME_LIMIT" = 1 ] && limit=(--time-limit "$(awk "BEGIN {printf \"%.2f\", ($room - 20) / 60}")")
    mkdir -p "$dir"
    echo "=== gpu_run $(date -u +%FT%TZ): from $(ls "$dir"/checkpoint.pt 2> /dev/null || echo scratch)" >> "$dir/run.log"
    say "   $cell: $dataset ${way}-way ${shot}-shot, $room s (${limit[*]:-SIGTERM})"
    # shellcheck disable=SC2086
    (cd "$ROOT" && timeout -s TERM -k 20 "$room" "$PY" -m fsbench run maml "$dataset" \
        --way "$way" --shot "$shot" --device "$DEVICE" --out "$dir" --resume --quiet \
        "${limit[@]}" ${GPU_RUN_CELL_ARGS:-}) >> "$dir/run.log" 2>&1
    say "   $cell: exit $?; $(tail -n 1 "$dir/run.log")"
done

# ---- pack --------------------------------------------------------------------------------------
say "summary"
(cd "$ROOT" && "$PY" benchmarks/gpu_summary.py "$RESULTS" "$RESULTS") | tee "$OUT_DIR/summary.md.tmp"
mv "$OUT_DIR/summary.md.tmp" "$OUT_DIR/summary.md"
for ckpt in "$RESULTS"/*/checkpoint.pt; do
    [ -f "$ckpt" ] || continue
    size=$(stat -c %s "$ckpt")
    [ "$size" -gt 2097152 ] && say "WARNING: $ckpt is $size bytes (over 2 MB)"
done
tar -czf "$OUT_DIR/gpu_run.tar.gz" -C "$RESULTS" --exclude ./speed/SKIPPED .
say "packed $(du -h "$OUT_DIR/gpu_run.tar.gz" | cut -f1) into $OUT_DIR/gpu_run.tar.gz (tar -xzf gpu_run.tar.gz -C benchmarks/results/gpu)"
rm -rf "$OUT_DIR/work"
