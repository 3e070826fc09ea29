#!/usr/bin/env bash
# scripts/gpu-dist.sh: data-parallel training on the device machine: build for sm_90 (build), the
# data-parallel test files on CPU (MPI, 2 ranks) and CUDA (NCCL: a world of one; two ranks on two GPUs
# when the machine has them) (tests), the whole
# suite (suite), compute-sanitizer memcheck over the new CUDA cases (sanitize), and GPT-2 124M at
# 16 × 1024 tokens per rank and step, bf16: one process, then mpirun -np 1 (NCCL, f32 and bf16
# gradients, ZeRO-1), then mpirun -np N for every N from 2 to the GPU count, GA = N so that each rank
# runs one micro-step (scaling efficiency = tok/s at N / (N × tok/s of one process)), and with .peer/ (a
# copy of shared/perf) the PyTorch DDP peer, benchmarks/peer_ddp.py, for every N (bench).
# NCCL_NVLS_ENABLE=0 throughout (README: "Data-parallel training"). Logs to $OUT (or gpu-logs/).
# Usage: bash scripts/gpu-dist.sh [build tests suite sanitize bench]
set -uo pipefail
cd "$(dirname "$0")/.."
export NCCL_NVLS_ENABLE=0 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
out="${OUT:-gpu-logs}"
mkdir -p "$out"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(build tests suite sanitize bench)
status=0
gpus=$(nvidia-smi -L | wc -l)
files='*tests/dist/*,*tests/e2e/data_parallel_test.cpp,*tests/autograd/*leaf*,*tests/nn/*data_parallel*,*tests/optical/data_parallel*'
for step in "${steps[@]}"; do
    case "$step" in
    build)
        bash scripts/gpu-build.sh "$out" || exit 1 ;;
    tests)
        ./build-gpu/lumen_tests --no-version --source-file="$files" > "$out/tests_dist.log" 2>&1 || status=1
        grep -E "^\[doctest\] (test cases|assertions)|Status|ERROR|FAILED" "$out/tests_dist.log" | tail -20 ;;
    suite)
        ./build-gpu/lumen_tests --no-version > "$out/suite.log" 2>&1 || status=1
        grep -E "^\[doctest\] (test cases|assertions)|Status" "$out/suite.log" | tail -5 ;;
    sanitize)  # the CUDA cases of the rank slices and the NCCL world of one, under memcheck
        # NOTE: NCCL's own start-up probes kernels of other architectures (cudaFuncGetAttributes returns
        # "no kernel image" inside ncclCommInitRank): API errors, not memory errors, so not reported.
        compute-sanitizer --tool memcheck --report-api-errors no --error-exitcode 9 ./build-gpu/lumen_tests \
            --no-version --source-file='*tests/nn/data_parallel*,*tests/optical/data_parallel*,*tests/dist/nccl*' \
            > "$out/memcheck.log" 2>&1 || status=1
        grep -E "ERROR SUMMARY|test cases" "$out/memcheck.log" | tail -3 ;;
    bench)
        python3 scripts/random_tokens_dataset.py /tmp/rand_gpt2 --train 20000000 --val 400000
        common=(configs/gpt2_124m.cfg --dataset=/tmp/rand_gpt2 --vocab_size=50304 --batch_size=16 --block_size=1024
                --max_iters=60 --warmup_iters=5 --eval_interval=1000000 --eval_iters=1 --log_interval=20
                --always_save_checkpoint=false --device=cuda --dtype=bfloat16 --loader=sequential)
        mpi=(mpirun --bind-to none --oversubscribe -x NCCL_NVLS_ENABLE=0 --allow-run-as-root)
        bench_run() {  # name, GA, launcher..., -- extra keys...
            local name=$1 ga=$2; shift 2
            local launcher=() extra=()
            while [ $# -gt 0 ] && [ "$1" != "--" ]; do launcher+=("$1"); shift; done
            [ $# -gt 0 ] && shift
            extra=("$@")
            "${launcher[@]}" ./build-gpu/train "${common[@]}" --gradient_accumulation_steps="$ga" "${extra[@]}" \
                --out_dir="/tmp/dist_$name" > "$out/bench_$name.log" 2>&1 || status=1
            # iter 40: the window of iterations 21-40 (mpirun's terminal output carries \r and escapes)
            echo "== $name: $(tr '\r' '\n' < "$out/bench_$name.log" | grep -aE 'iter 40:|error' | tail -2)"
            grep -aE "^(data parallel|gradient buckets|zero1:)" "$out/bench_$name.log"
        }
        bench_run single 1 --
        bench_run nccl1_f32 1 "${mpi[@]}" -np 1 --
        bench_run nccl1_bf16 1 "${mpi[@]}" -np 1 -- --dist.grad_dtype=bfloat16
        bench_run nccl1_zero1 1 "${mpi[@]}" -np 1 -- --dist.zero1=true
        for n in $(seq 2 "$gpus"); do
            bench_run "nccl${n}_f32" "$n" "${mpi[@]}" -np "$n" --
            bench_run "nccl${n}_bf16" "$n" "${mpi[@]}" -np "$n" -- --dist.grad_dtype=bfloat16
        done
        if [ -d .peer ]; then  # the PyTorch DDP peer in the same call (needs .peer/peer_bench.py)
            for n in $(seq 1 "$gpus"); do
                TORCH_SYMM_MEM_DISABLE_MULTICAST=1 PYTHONUNBUFFERED=1 python3 -m torch.distributed.run --standalone \
                    --nproc_per_node "$n" benchmarks/peer_ddp.py > "$out/peer_ddp_$n.log" 2>&1 || status=1
                grep -E "^\{" "$out/peer_ddp_$n.log" || tail -5 "$out/peer_ddp_$n.log"
            done
        fi ;;
    esac
done
exit $status
