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
palu_cli_test(export.to_mla_not_yet 2 "-" "^E export: --to mla is not implemented yet"
              COMMAND ${export} --model /nonexistent/model --to mla --out @TMP@/d)
palu_cli_test(export.bad_to 2 "-" "^E export: --to 'onnx': expected dense, mla or gguf"
              COMMAND ${export} --model /nonexistent/model --to onnx --out @TMP@/d)
palu_cli_test(export.bad_dtype 2 "-" "dtype"
              COMMAND ${export} --model x --out y --dtype int8)
palu_cli_test(export.no_out 2 "-" "out is required" COMMAND ${export} --model x)
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
