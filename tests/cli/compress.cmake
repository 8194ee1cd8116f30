# palu-compress: end to end on stories260K (uniform + plain SVD needs no calibration; fisher_uniform
# calibrates on the golden token stream) and bad input (one E line, exit code, nothing written).
palu_cli_test(compress.stories_uniform_plain 0 "KV cache per token: original f16 640 B, compressed 320 B .16-bit latents. = 2\\.000x smaller"
              "-" NEEDS models/stories260K/hf
              COMMAND $<TARGET_FILE:palu-compress> --model @DATA@/models/stories260K/hf --out @TMP@/ckpt
                      --ratio 0.5 --group-size 2 --rank-search uniform --no-whiten --threads 1)
palu_cli_test(compress.stories_fisher_eval 0 "perplexity \\(4 windows of 256\\): original 4\\.[0-9]+, compressed [0-9.]+"
              "layer 5/5" NEEDS models/stories260K/hf
              COMMAND $<TARGET_FILE:palu-compress> --model @DATA@/models/stories260K/hf --out @TMP@/ckpt
                      --ratio 0.5 --calib-tokens @DATA@/golden/stories260K.tinystories.i32
                      --calib-samples 16 --calib-seqlen 128 --latent-bits 4 --hadamard
                      --eval-tokens @DATA@/golden/stories260K.tinystories.i32 --eval-seqlen 256
                      --eval-max-windows 4 --threads 1)
palu_cli_test(compress.bad_ratio 2 "-" "^E compress: --ratio must be in \\(0, 1\\], got 1\\.5" NEEDS models/stories260K/hf
              COMMAND $<TARGET_FILE:palu-compress> --model @DATA@/models/stories260K/hf --out @TMP@/ckpt
                      --ratio 1.5 --rank-search uniform --no-whiten)
palu_cli_test(compress.bad_group_size 2 "-" "^E compress: --group-size 3 does not divide the 4 KV heads" NEEDS models/stories260K/hf
              COMMAND $<TARGET_FILE:palu-compress> --model @DATA@/models/stories260K/hf --out @TMP@/ckpt
                      --ratio 0.5 --group-size 3 --rank-search uniform --no-whiten)
palu_cli_test(compress.no_calibration 2 "-" "^E compress: rank search 'fisher_uniform' needs calibration statistics" NEEDS models/stories260K/hf
              COMMAND $<TARGET_FILE:palu-compress> --model @DATA@/models/stories260K/hf --out @TMP@/ckpt --ratio 0.5)
palu_cli_test(compress.missing_calibration 6 "-" "^E compress: calibration file /nonexistent/c4.jsonl does not exist" NEEDS models/stories260K/hf
              COMMAND $<TARGET_FILE:palu-compress> --model @DATA@/models/stories260K/hf --out @TMP@/ckpt
                      --ratio 0.5 --calib /nonexistent/c4.jsonl)
palu_cli_test(compress.unwritable_out 6 "-" "^E compress: cannot write /proc/palu/out" NEEDS models/stories260K/hf
              COMMAND $<TARGET_FILE:palu-compress> --model @DATA@/models/stories260K/hf --out /proc/palu/out
                      --ratio 0.5 --rank-search uniform --no-whiten)
palu_cli_test(compress.missing_model 6 "-" "^E .*no such file" COMMAND $<TARGET_FILE:palu-compress>
              --model /nonexistent/model --out @TMP@/ckpt --ratio 0.5)
palu_cli_test(compress.help 0 "Stages: calibrate on text" "-" COMMAND $<TARGET_FILE:palu-compress> --help)
# Target as KV bytes per token (4-bit latents incl. scales/zeros): 200 B/token of stories260K = ratio 0.75.
palu_cli_test(compress.kv_bytes_target 0 "achieved 0\\.7500 \\(240/320 dims\\).*|compressed 200 B \\(4-bit latents\\)" "-"
              NEEDS models/stories260K/hf
              COMMAND $<TARGET_FILE:palu-compress> --model @DATA@/models/stories260K/hf --out @TMP@/ckpt
                      --kv-bytes 200 --latent-bits 4 --group-size 2 --rank-search uniform --no-whiten)
palu_cli_test(compress.no_target 2 "-" "^E compress: give the target: --ratio R or --kv-bytes N" NEEDS models/stories260K/hf
              COMMAND $<TARGET_FILE:palu-compress> --model @DATA@/models/stories260K/hf --out @TMP@/ckpt
                      --rank-search uniform --no-whiten)
palu_cli_test(compress.impossible_kv_bytes 2 "-" "^E rank: KV budget 5000 bytes/token is impossible" NEEDS models/stories260K/hf
              COMMAND $<TARGET_FILE:palu-compress> --model @DATA@/models/stories260K/hf --out @TMP@/ckpt
                      --kv-bytes 5000 --rank-search uniform --no-whiten)
# --layout mla (docs/mla.md): stories260K as a DeepSeek-V3 checkpoint at half the KV bytes, and
# requests the model cannot satisfy (one E line, exit 2, nothing written).
palu_cli_test(compress.mla_stories 0 "perplexity \\(4 windows of 256\\): original 4\\.[0-9]+, MLA [0-9.]+"
              "MLA layout: kv_lora_rank 24 \\+ rope 8 \\(fold, rope_theta 10000 -> 10000\\): 320 B per token \\(original f16 640 B, 2\\.000x smaller\\)"
              NEEDS models/stories260K/hf
              COMMAND $<TARGET_FILE:palu-compress> --model @DATA@/models/stories260K/hf --out @TMP@/ckpt
                      --layout mla --ratio 0.5 --calib-tokens @DATA@/golden/stories260K.tinystories.i32
                      --calib-samples 16 --calib-seqlen 128 --eval-tokens @DATA@/golden/stories260K.tinystories.i32
                      --eval-seqlen 256 --eval-max-windows 4 --threads 1)
palu_cli_test(compress.mla_rope_larger_than_head 2 "-" "^E compress: --rope-dim: the rope dim 16 is larger than the head \\(head_dim 8\\)"
              NEEDS models/stories260K/hf
              COMMAND $<TARGET_FILE:palu-compress> --model @DATA@/models/stories260K/hf --out @TMP@/ckpt
                      --layout mla --ratio 0.5 --rope-dim 16 --calib-tokens @DATA@/golden/stories260K.tinystories.i32)
palu_cli_test(compress.mla_budget_below_rope 2 "-" "^E compress: --layout mla: the budget \\(6 dims per layer\\) is not above the rope part \\(8\\)"
              NEEDS models/stories260K/hf
              COMMAND $<TARGET_FILE:palu-compress> --model @DATA@/models/stories260K/hf --out @TMP@/ckpt
                      --layout mla --ratio 0.1 --calib-tokens @DATA@/golden/stories260K.tinystories.i32)
palu_cli_test(compress.mla_vllm_geometry 2 "-" "^E compress: --layout mla: kv_lora_rank 312 is above what the layer can use"
              NEEDS models/stories260K/hf
              COMMAND $<TARGET_FILE:palu-compress> --model @DATA@/models/stories260K/hf --out @TMP@/ckpt
                      --layout mla --ratio 0.5 --target vllm --calib-tokens @DATA@/golden/stories260K.tinystories.i32)
