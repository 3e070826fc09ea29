#!/usr/bin/env bash
# scripts/gpu-hf.sh: Hugging Face checkpoints, LoRA and the golden parity tests on the device machine
# (torch + transformers there), in steps: regenerate the committed golden fixtures and compare them with
# the committed bits (golden), write full-size GPT-2 124M / SmolLM-135M-like parity folders (bigdata),
# build for sm_90 (build), the issue's test files on CPU and CUDA (tests), full-size logits against
# transformers in f32 and bf16 and lumen's exports loaded back by transformers (parity), ./train from a
# Hugging Face folder: full fine-tune, LoRA, LoRA + optical, with the merged export loaded by transformers
# (finetune), the whole suite (suite), compute-sanitizer memcheck over the new CUDA cases (sanitize).
# Logs to $OUT (or gpu-logs/). Usage: bash scripts/gpu-hf.sh [golden bigdata build tests parity finetune suite sanitize]
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-logs}"
mkdir -p "$out"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(golden bigdata build tests parity finetune suite sanitize)
status=0
parity=/tmp/hf_parity
files='*tests/golden/*,*tests/nn/hf_*_test.cpp,*tests/nn/lora_test.cpp,*tests/training/finetune_test.cpp,*tests/data/tokenizer_json_test.cpp'
for step in "${steps[@]}"; do
    case "$step" in
    golden)
        python3 tests/reference/make_golden.py --out /tmp/golden_device > "$out/golden.log" 2>&1 || status=1
        python3 - <<'PY' 2>&1 | tee "$out/golden_compare.txt"
from safetensors.numpy import load_file
import numpy as np
for fam in ("gpt2", "llama", "wiggle"):
    for f in ("golden", "model"):
        a = load_file(f"tests/fixtures/golden/{fam}/{f}.safetensors")
        b = load_file(f"/tmp/golden_device/{fam}/{f}.safetensors")
        same = a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
        worst = max(float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) if a[k].size else 0.0 for k in a if k in b)
        print(f"{fam}/{f}.safetensors: device regeneration {'bit-identical' if same else 'differs'} (max |diff| {worst:.3g})")
PY
        ;;
    bigdata)
        python3 tests/reference/make_golden.py --logits-only --out "$parity" --device cuda > "$out/bigdata.log" 2>&1 || status=1
        tail -5 "$out/bigdata.log" ;;
    build)
        bash scripts/gpu-build.sh "$out" || exit 1 ;;
    tests)
        ./build-gpu/lumen_tests --no-version --source-file="$files" > "$out/tests_hf.log" 2>&1 || status=1
        grep -E "^\[doctest\] (test cases|assertions)|Status|ERROR" "$out/tests_hf.log" | tail -20
        grep -E "golden .*(f32|bf16).*:|worst" "$out/tests_hf.log" | head -40 ;;
    parity)
        LUMEN_HF_PARITY_DIR="$parity" ./build-gpu/lumen_tests --no-version -tc='golden cuda: full-size*' \
            > "$out/parity.log" 2>&1 || status=1
        grep -vE "^\s*$" "$out/parity.log" | tail -30
        for m in gpt2_124m smollm_135m; do
            python3 tests/reference/check_hf_export.py "$parity/${m}_export" "$parity/$m/golden.safetensors" --bf16 \
                2>&1 | tee "$out/check_export_$m.txt" || status=1
        done ;;
    finetune)
        python3 scripts/random_tokens_dataset.py /tmp/rand_gpt2 --train 4000000 --val 400000
        common=(--init_from=hf:$parity/gpt2_124m --dataset=/tmp/rand_gpt2 --device=cuda --batch_size=16
                --gradient_accumulation_steps=1 --block_size=1024 --max_iters=40 --eval_interval=40 --eval_iters=4
                --log_interval=10 --learning_rate=1e-4 --warmup_iters=0 --lr_decay_iters=40 --always_save_checkpoint=false)
        for run in full lora lora_optical; do
            extra=()
            [ "$run" != full ] && extra+=(--lora.r=32 --lora.alpha=32 --export_hf=/tmp/ft_$run --merge_lora)
            [ "$run" = lora_optical ] && extra+=(--optical.enabled=true)
            ./build-gpu/train "${common[@]}" "${extra[@]}" --out_dir=/tmp/ft_out_$run \
                > "$out/finetune_$run.log" 2>&1 || status=1
            echo "== $run"; grep -E "^(iter|step|lora|optimizer|exported|error|number)" "$out/finetune_$run.log" | tail -12
        done
        python3 - <<'PY' 2>&1 | tee "$out/finetune_transformers.txt"
import torch, numpy as np
from transformers import AutoModelForCausalLM
tok = np.fromfile("/tmp/rand_gpt2/val_000000.bin", dtype=np.uint16, offset=1024)[:4 * 1025].astype(np.int64).reshape(4, 1025)
x = torch.tensor(tok)
for run in ("lora", "lora_optical"):
    m = AutoModelForCausalLM.from_pretrained(f"/tmp/ft_{run}", attn_implementation="eager").cuda().eval()
    with torch.no_grad():
        out = m(x[:, :1024].cuda(), labels=x[:, 1:].cuda() if False else None)
        loss = torch.nn.functional.cross_entropy(out.logits.float().flatten(0, 1), x[:, 1:].cuda().flatten())
    print(f"transformers loads /tmp/ft_{run}: loss {loss.item():.4f} on 4 val windows (ln 50257 = {np.log(50257):.4f})")
PY
        ;;
    suite)
        ./build-gpu/lumen_tests --no-version > "$out/suite.log" 2>&1 || status=1
        grep -E "^\[doctest\] (test cases|assertions)|Status" "$out/suite.log"
        grep -E "ERROR|FAILED" -B3 "$out/suite.log" | head -40 ;;
    sanitize)
        compute-sanitizer --tool memcheck --error-exitcode 9 ./build-gpu/lumen_tests --no-version \
            -tc='golden cuda: f32 and bf16 logits*,*lora*,*LoRA*' > "$out/sanitizer_memcheck.log" 2>&1
        echo "compute-sanitizer memcheck: exit $? ; $(grep -E 'ERROR SUMMARY' "$out/sanitizer_memcheck.log" | tail -1)" ;;
    esac
done
exit $status
