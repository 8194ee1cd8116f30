# palu-eval
palu_cli_test(eval.ppl_tokens_hf 0 "ppl 4\\.1654" "window 128/128" NEEDS models/stories260K/hf
              COMMAND $<TARGET_FILE:palu-eval> ppl --model @DATA@/models/stories260K/hf
                      --tokens @DATA@/golden/stories260K.tinystories.i32 --seqlen 256 --batch 4)
palu_cli_test(eval.ppl_tokens_llama2c_json 0 "windows 2" "-" NEEDS models/stories260K/stories260K.bin
              COMMAND $<TARGET_FILE:palu-eval> ppl --model @DATA@/models/stories260K/stories260K.bin
                      --tokens @DATA@/golden/stories260K.tinystories.i32 --seqlen 256
                      --max-windows 2 --threads 1 --json @TMP@/r.json)
palu_cli_test(eval.ppl_too_few_tokens 2 "-" "^E eval: .*do not fill one window" NEEDS models/stories260K/hf
              COMMAND $<TARGET_FILE:palu-eval> ppl --model @DATA@/models/stories260K/hf
                      --tokens @DATA@/golden/stories260K.tinystories.i32 --seqlen 40000)
palu_cli_test(eval.ppl_missing_model 6 "-" "^E .*no such file"
              COMMAND $<TARGET_FILE:palu-eval> ppl --model /nonexistent/model
                      --tokens ${PROJECT_SOURCE_DIR}/README.md --seqlen 16)
palu_cli_test(eval.ppl_no_seqlen 2 "-" "seqlen is required" COMMAND $<TARGET_FILE:palu-eval> ppl --model x)
palu_cli_test(eval.no_subcommand 2 "-" "subcommand" COMMAND $<TARGET_FILE:palu-eval>)
