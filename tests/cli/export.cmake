# palu-export (the compressed input is made by a test helper until palu-compress exists)
add_executable(palu_test_make_compressed ${CMAKE_CURRENT_LIST_DIR}/make_compressed_fixture.cpp)
target_link_libraries(palu_test_make_compressed PRIVATE palu_pipeline)
set(make_c $<TARGET_FILE:palu_test_make_compressed>)
set(export $<TARGET_FILE:palu-export>)

palu_cli_test(export.dense_stories260k 0 "kv heads 4, d_head 8" "wrote .*dense F32 k/v_proj for 5 layers"
              NEEDS models/stories260K/hf
              COMMAND bash -c "${make_c} @DATA@/models/stories260K/hf @TMP@/c 2 8 2>/dev/null && ${export} --model @TMP@/c --to dense --out @TMP@/d && test -f @TMP@/d/tok512.bin && $<TARGET_FILE:palu-inspect> @TMP@/d")
palu_cli_test(export.dense_nonempty_out 2 "-" "^E export: .*exists and is not empty; hint: pass --overwrite"
              NEEDS models/stories260K/hf
              COMMAND bash -c "${make_c} @DATA@/models/stories260K/hf @TMP@/c 4 6 2>/dev/null && mkdir @TMP@/d && touch @TMP@/d/x && ${export} --model @TMP@/c --out @TMP@/d")
palu_cli_test(export.dense_over_source 2 "-" "^E export: .*contains the source model"
              NEEDS models/stories260K/hf
              COMMAND bash -c "${make_c} @DATA@/models/stories260K/hf @TMP@/c 4 6 2>/dev/null && ${export} --model @TMP@/c --out @TMP@ --overwrite")
palu_cli_test(export.uncompressed_model 2 "-" "^E export: .*is not a compressed palu checkpoint"
              NEEDS models/stories260K/hf
              COMMAND ${export} --model @DATA@/models/stories260K/hf --to dense --out @TMP@/d)
palu_cli_test(export.missing_model 6 "-" "^E .*no such file"
              COMMAND ${export} --model /nonexistent/model --to dense --out @TMP@/d)
palu_cli_test(export.bad_to 2 "-" "^E export: --to 'onnx': expected dense, deepseek or gguf"
              COMMAND ${export} --model /nonexistent/model --to onnx --out @TMP@/d)
palu_cli_test(export.bad_dtype 2 "-" "dtype"
              COMMAND ${export} --model x --out y --dtype int8)
palu_cli_test(export.no_out 2 "-" "out is required" COMMAND ${export} --model x)

# --to deepseek on the MLA fixture (tests/reference/mla_tiny, kv_lora_rank 16 + rope 8).
set(mla_tiny @SRC@/tests/reference/mla_tiny)
palu_cli_test(export.deepseek_mla_tiny 0 "tensors +23, .* BF16 x23"
              "wrote .*DeepSeek-V3 \\(MLA, kv_lora_rank 16 \\+ rope 8, target any\\), 2 layers, 23 BF16 tensors"
              COMMAND bash -c "${export} --model ${mla_tiny} --to deepseek --dtype bf16 --out @TMP@/d && test -f @TMP@/d/generation_config.json && $<TARGET_FILE:palu-inspect> @TMP@/d")
palu_cli_test(export.deepseek_vllm_refused 2 "-"
              "^E export: .*--target vllm: kv_lora_rank 16 \\+ qk_rope_head_dim 8 = 24, but vLLM's MLA kernels accept only 576 or 320; hint:"
              COMMAND bash -c "${export} --model ${mla_tiny} --to deepseek --target vllm --out @TMP@/d; rc=$?; test ! -e @TMP@/d || rc=99; exit $rc")
palu_cli_test(export.deepseek_plain_llama 2 "-"
              "^E export: .*is a plain llama model, not an MLA checkpoint: --to deepseek needs an MLA checkpoint; hint: make one with palu-compress --layout mla"
              COMMAND bash -c "$<TARGET_FILE:palu_test_write_tiny> @TMP@/llama && ${export} --model @TMP@/llama --to deepseek --out @TMP@/d; rc=$?; test ! -e @TMP@/d || rc=99; exit $rc")
palu_cli_test(export.deepseek_nonempty_out 2 "-" "^E export: .*exists and is not empty; hint: pass --overwrite"
              COMMAND bash -c "mkdir @TMP@/d && touch @TMP@/d/x && ${export} --model ${mla_tiny} --to mla --out @TMP@/d")
palu_cli_test(export.deepseek_target_with_dense 2 "-" "^E export: --target applies to --to deepseek only"
              COMMAND ${export} --model ${mla_tiny} --to dense --target vllm --out @TMP@/d)
palu_cli_test(export.deepseek_bad_target 2 "-" "^E export: --target 'sglang': expected any or vllm"
              COMMAND ${export} --model ${mla_tiny} --to deepseek --target sglang --out @TMP@/d)

# transformers on the export, live (tests/reference/deepseek_export_hf_check.py): skipped with a
# message when python3 cannot import torch + transformers; the recorded result is checked by
# DeepseekExport.MatchesRecordedTransformersPpl without them.
add_test(NAME reference.deepseek_export_hf_live
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/deepseek_export_hf_live.sh ${export}
                 $<TARGET_FILE:palu-eval> ${PROJECT_SOURCE_DIR})
set_tests_properties(reference.deepseek_export_hf_live PROPERTIES LABELS "cli;reference"
                     SKIP_RETURN_CODE 77 TIMEOUT 300)
# --to gguf (tests/runtime/test_gguf_export.cpp has the file's contents; these check the CLI's
# exit codes and that a refused export leaves no file)
palu_cli_test(export.gguf_needs_mla 2 "-"
              "^E export: .*--to gguf needs an MLA checkpoint; make one with palu-compress --layout mla"
              NEEDS models/stories260K/hf
              COMMAND bash -c "${export} --model @DATA@/models/stories260K/hf --to gguf --out @TMP@/m.gguf; rc=\$?; test ! -e @TMP@/m.gguf && exit \$rc")
palu_cli_test(export.gguf_no_tokenizer 2 "-" "^E export: .*mla_tiny has no tokenizer: expected tokenizer.gguf, tok96.bin or tokenizer.model"
              COMMAND bash -c "${export} --model ${PROJECT_SOURCE_DIR}/tests/reference/mla_tiny --to gguf --out @TMP@/m.gguf; rc=\$?; test ! -e @TMP@/m.gguf && exit \$rc")
palu_cli_test(export.gguf_palu_layout_refused 2 "-"
              "^E export: .*palu low-rank layout\\): --to gguf needs an MLA checkpoint"
              NEEDS models/stories260K/hf
              COMMAND bash -c "${make_c} @DATA@/models/stories260K/hf @TMP@/c 2 8 2>/dev/null && ${export} --model @TMP@/c --to gguf --out @TMP@/m.gguf; rc=\$?; test ! -e @TMP@/m.gguf && exit \$rc")
