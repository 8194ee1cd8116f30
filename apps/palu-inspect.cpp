// palu-inspect: print a checkpoint's architecture, dimensions, parameter count, storage types and
// KV-cache bytes per token. MODEL: HF directory, .safetensors, .gguf or llama2.c .bin.
#include <cstdio>

#include "cli_common.h"
#include "palu/pipeline/inspect.h"

int main(int argc, char** argv) {
    CLI::App app{
        "palu-inspect: describe a checkpoint and its KV-cache cost.\n"
        "MODEL is an HF directory (config.json + safetensors), a .safetensors file, a .gguf\n"
        "or a llama2.c .bin checkpoint.",
        "palu-inspect"};
    palu::pipeline::InspectParams params;
    bool json = false;
    palu::cli::CommonOptions common;
    app.add_option("MODEL", params.model_path, "Model path")->required();
    app.add_flag("--json", json, "Print JSON instead of the text report");
    palu::cli::add_common(app, common);
    return palu::cli::run_main(app, argc, argv, [&] {
        palu::cli::apply_common(common);
        auto r = palu::pipeline::run_inspect(params);
        std::string out =
            json ? palu::pipeline::to_json(r).dump(2) + "\n" : palu::pipeline::to_text(r);
        std::fputs(out.c_str(), stdout);
        return 0;
    });
}
