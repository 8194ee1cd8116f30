# palu-sweep
palu_cli_test(sweep.bad_ratio_list 2 "-" "^E sweep: --ratios: item '1\\.5': expected a kept ratio in \\(0, 1\\]"
              NEEDS models/stories260K/hf
              COMMAND $<TARGET_FILE:palu-sweep> --model @DATA@/models/stories260K/hf
                      --calib-tokens @DATA@/golden/stories260K.tinystories.i32
                      --eval-tokens @DATA@/golden/stories260K.tinystories.i32 --ratios 1.0,1.5)
palu_cli_test(sweep.bad_latent_list 2 "-" "^E sweep: --latents: item '5': expected a latent format"
              NEEDS models/stories260K/hf
              COMMAND $<TARGET_FILE:palu-sweep> --model @DATA@/models/stories260K/hf
                      --calib-tokens @DATA@/golden/stories260K.tinystories.i32
                      --eval-tokens @DATA@/golden/stories260K.tinystories.i32 --latents 16,5)
palu_cli_test(sweep.group_size_not_divisor 2 "-" "^E sweep: --group-sizes: 3 does not divide the 4 KV heads"
              NEEDS models/stories260K/hf
              COMMAND $<TARGET_FILE:palu-sweep> --model @DATA@/models/stories260K/hf
                      --calib-tokens @DATA@/golden/stories260K.tinystories.i32
                      --eval-tokens @DATA@/golden/stories260K.tinystories.i32 --group-sizes 1,3)
palu_cli_test(sweep.tiny_grid 0 "\\| fisher_uniform \\| 2 \\| 0\\.50 \\|" "sweep: progress: row 2/2"
              NEEDS models/stories260K/hf
              COMMAND $<TARGET_FILE:palu-sweep> --model @DATA@/models/stories260K/hf
                      --calib-tokens @DATA@/golden/stories260K.tinystories.i32 --calib-samples 8
                      --calib-seqlen 128 --eval-tokens @DATA@/golden/stories260K.tinystories.i32
                      --eval-seqlen 256 --eval-max-windows 2 --methods fisher_uniform
                      --group-sizes 2 --ratios 0.5 --latents 16,3h --threads 1
                      --json @TMP@/rows.jsonl --out @TMP@/table.md)
