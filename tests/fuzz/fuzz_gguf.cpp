// palu fuzz: the GGUF reader on arbitrary bytes. Parses the image (GgufFile::open_memory), reads
// every metadata value through the typed getters, dequantizes every tensor, and opens it as a
// llama model (ModelConfig, names, RoPE un-permutation, load_f32). Any palu::Error is an accepted
// outcome; crashes, sanitizer reports, hangs and leaks are findings.
// Seeds: tests/fuzz/corpus/gguf/ (written by the GgufFuzzCorpus test from palu's GGUF writer).
#include <cstddef>
#include <cstdint>

#include "palu/core/error.h"
#include "palu/formats/gguf.h"
#include "palu/formats/gguf_model.h"

using namespace palu::formats;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        auto f = GgufFile::open_memory(data, size, "fuzz.gguf");
        for (const auto& key : f->keys()) {
            const GgufValue* v = f->find(key);
            if (!v) __builtin_trap();
            try {
                (void)f->get_int(key);
            } catch (const palu::Error&) {
            }
            try {
                (void)f->get_float(key);
            } catch (const palu::Error&) {
            }
            try {
                (void)f->get_string(key);
            } catch (const palu::Error&) {
            }
            try {
                (void)f->get_int_array(key);
            } catch (const palu::Error&) {
            }
            try {
                (void)f->get_float_array(key);
            } catch (const palu::Error&) {
            }
            try {
                (void)f->get_string_array(key);
            } catch (const palu::Error&) {
            }
        }
        for (const auto& t : f->tensor_infos()) {
            if (f->find_tensor(t.name) != &t) __builtin_trap();
            try {
                auto y = f->dequantize(t);
                volatile float sink = y.empty() ? 0.0f : y.back();
                (void)sink;
            } catch (const palu::Error&) {
            }
        }
        auto src = open_gguf_model(std::move(f));
        for (const auto& info : src->tensors()) {
            try {
                auto t = src->load_f32(info.name);
                if (t.shape() != info.shape) __builtin_trap();
            } catch (const palu::Error&) {
            }
        }
    } catch (const palu::Error&) {
    }
    return 0;
}
