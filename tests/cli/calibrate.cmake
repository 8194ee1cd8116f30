# palu-calibrate, palu-rank-search
set(_calib_args --model @DATA@/models/stories260K/hf --tokens @DATA@/golden/stories260K.tinystories.i32
                --samples 8 --seqlen 64 --threads 1 --quiet)
list(JOIN _calib_args " " _calib_args)  # one string inside the sh -c commands
palu_cli_test(calibrate.tokens_then_rank_search 0 "\"achieved_ratio\"" "achieved ratio 0\\.[0-9]+"
              NEEDS models/stories260K/hf
              COMMAND sh -c "$<TARGET_FILE:palu-calibrate> ${_calib_args} --out @TMP@/s.h5 && $<TARGET_FILE:palu-rank-search> --stats @TMP@/s.h5 --model @DATA@/models/stories260K/hf --ratio 0.5 --group-size 2 --round-to 4")
palu_cli_test(calibrate.reuse 0 "reused yes" "" NEEDS models/stories260K/hf
              COMMAND sh -c "$<TARGET_FILE:palu-calibrate> ${_calib_args} --out @TMP@/s.h5 >/dev/null && $<TARGET_FILE:palu-calibrate> ${_calib_args} --out @TMP@/s.h5")
palu_cli_test(calibrate.other_settings_refused 2 "" "^E calibrate: .*other settings" NEEDS models/stories260K/hf
              COMMAND sh -c "$<TARGET_FILE:palu-calibrate> ${_calib_args} --out @TMP@/s.h5 >/dev/null && $<TARGET_FILE:palu-calibrate> ${_calib_args} --seed 4 --out @TMP@/s.h5")
palu_cli_test(calibrate.stats_of_other_model_refused 2 "" "^E .*model" NEEDS models/stories260K/stories260K.bin
              COMMAND sh -c "$<TARGET_FILE:palu-calibrate> ${_calib_args} --out @TMP@/s.h5 >/dev/null && $<TARGET_FILE:palu-rank-search> --stats @TMP@/s.h5 --model @DATA@/models/stories260K/stories260K.bin --ratio 0.5")
palu_cli_test(calibrate.missing_text 6 "" "^E .*" NEEDS models/stories260K/hf
              COMMAND $<TARGET_FILE:palu-calibrate> --model @DATA@/models/stories260K/hf --text /nonexistent/corpus.txt
                      --samples 2 --seqlen 16 --out @TMP@/s.h5)
palu_cli_test(calibrate.empty_text 3 "" "^E .*" NEEDS models/stories260K/hf
              COMMAND sh -c ": > @TMP@/empty.txt && $<TARGET_FILE:palu-calibrate> --model @DATA@/models/stories260K/hf --text @TMP@/empty.txt --samples 2 --seqlen 16 --out @TMP@/s.h5; rc=$?; test -e @TMP@/s.h5 && exit 99; exit $rc")
palu_cli_test(calibrate.too_many_samples 2 "" "^E calibrate: .*contiguous windows" NEEDS models/stories260K/hf
              COMMAND $<TARGET_FILE:palu-calibrate> --model @DATA@/models/stories260K/hf
                      --tokens @DATA@/golden/stories260K.tinystories.i32 --samples 1000 --seqlen 256
                      --sampler contiguous --out @TMP@/s.h5)
palu_cli_test(calibrate.help 0 "Fisher" "" COMMAND $<TARGET_FILE:palu-calibrate> --help)
palu_cli_test(rank_search.ratio_zero 2 "" "^E rank: --ratio must be in \\(0, 1\\]" NEEDS models/stories260K/hf
              COMMAND $<TARGET_FILE:palu-rank-search> --model @DATA@/models/stories260K/hf --method uniform --ratio 0)
palu_cli_test(rank_search.ratio_above_one 2 "" "^E rank: --ratio must be in \\(0, 1\\]" NEEDS models/stories260K/hf
              COMMAND $<TARGET_FILE:palu-rank-search> --model @DATA@/models/stories260K/hf --method uniform --ratio 1.5)
palu_cli_test(rank_search.uniform_no_stats 0 "\"achieved_ratio\": 0\\.5," "kept 160/320" NEEDS models/stories260K/hf
              COMMAND $<TARGET_FILE:palu-rank-search> --model @DATA@/models/stories260K/hf --method uniform
                      --ratio 0.5 --group-size 2 --round-to 4)
palu_cli_test(rank_search.help 0 "fisher_uniform" "" COMMAND $<TARGET_FILE:palu-rank-search> --help)
palu_cli_test(rank_search.fisher_needs_stats 2 "" "^E rank: --stats is required" NEEDS models/stories260K/hf
              COMMAND $<TARGET_FILE:palu-rank-search> --model @DATA@/models/stories260K/hf --ratio 0.5)
palu_cli_test(rank_search.kv_bytes_uniform 0 "\"n_kept\": 160" "target ratio 0\\.5000" NEEDS models/stories260K/hf
              COMMAND $<TARGET_FILE:palu-rank-search> --model @DATA@/models/stories260K/hf --kv-bytes 320
                      --method uniform --group-size 2)
palu_cli_test(rank_search.no_target 2 "-" "^E rank: give the target" NEEDS models/stories260K/hf
              COMMAND $<TARGET_FILE:palu-rank-search> --model @DATA@/models/stories260K/hf --method uniform)
