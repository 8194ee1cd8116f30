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
palu_cli_test(export.to_gguf_not_yet 2 "-" "^E export: --to gguf is not implemented yet"
              COMMAND ${export} --model /nonexistent/model --to gguf --out @TMP@/d)
palu_cli_test(export.bad_to 2 "-" "^E export: --to 'onnx': expected dense, deepseek or gguf"
              COMMAND ${export} --model /nonexistent/model --to onnx --out @TMP@/d)
palu_cli_test(export.bad_dtype 2 "-" "dtype"
              COMMAND ${export} --model x --out y --dtype int8)
palu_cli_test(export.no_out 2 "-" "out is required" COMMAND ${export} --model x)
