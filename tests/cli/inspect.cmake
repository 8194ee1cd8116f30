# palu-inspect
palu_cli_test(inspect.hf_dir 0 "kv heads 4, d_head 8" "-" NEEDS models/stories260K/hf
              COMMAND $<TARGET_FILE:palu-inspect> @DATA@/models/stories260K/hf)
palu_cli_test(inspect.hf_dir_json 0 "\"bytes_per_token\": 1280" "-" NEEDS models/stories260K/hf
              COMMAND $<TARGET_FILE:palu-inspect> --json @DATA@/models/stories260K/hf)
palu_cli_test(inspect.safetensors_file 0 "hf-safetensors" "-" NEEDS models/stories260K/hf
              COMMAND $<TARGET_FILE:palu-inspect> @DATA@/models/stories260K/hf/model.safetensors)
palu_cli_test(inspect.llama2c 0 "llama2c" "-" NEEDS models/stories260K/stories260K.bin
              COMMAND $<TARGET_FILE:palu-inspect> @DATA@/models/stories260K/stories260K.bin)
palu_cli_test(inspect.missing 6 "-" "^E .*no such file" COMMAND $<TARGET_FILE:palu-inspect> /nonexistent/model)
palu_cli_test(inspect.not_a_model 3 "-" "^E .*" NEEDS models/stories260K/tok512.bin
              COMMAND $<TARGET_FILE:palu-inspect> @DATA@/models/stories260K/tok512.bin)
palu_cli_test(inspect.no_args 2 "-" "MODEL is required" COMMAND $<TARGET_FILE:palu-inspect>)
palu_cli_test(inspect.help 0 "KV-cache" "-" COMMAND $<TARGET_FILE:palu-inspect> --help)
palu_cli_test(inspect.gguf_smollm2 0 "d_model 576, layers 30, heads 9, kv heads 3, d_head 64" "-"
              NEEDS_MODEL models/smollm2/SmolLM2-135M-Instruct-Q4_1.gguf
              COMMAND $<TARGET_FILE:palu-inspect> @SRC@/models/smollm2/SmolLM2-135M-Instruct-Q4_1.gguf)
