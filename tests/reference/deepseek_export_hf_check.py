#!/usr/bin/env python3
"""Hugging Face transformers check of `palu-export --to deepseek`: the exported directory must load
with DeepseekV3ForCausalLM.from_pretrained (and AutoModelForCausalLM) with no missing, unexpected or
mismatched weights, and its perplexity must equal palu-eval's on the same token ids.

Dev tooling only (never needed to build or test palu; CPU torch is enough). The recorded result for
the fixture, tests/reference/mla_tiny_deepseek_export_hf_ppl.json, is what
tests/pipeline/test_deepseek_export.cpp checks palu against (so CI needs no torch); ctest
`reference.deepseek_export_hf_live` re-runs this script when torch and transformers import.

Perplexity exactly as palu-eval scores it (lib/pipeline/src/eval.cpp, model::compute_perplexity):
non-overlapping windows of SEQLEN ids from a raw little-endian int32 file, each window's NLL = mean
over its SEQLEN-1 next-token predictions, ppl = exp(mean of the window NLLs). The model runs once in
float64 (the reference) and once in float32 (what palu runs).

  # the ids (random, reproducible), then palu's side, then this check:
  python3 deepseek_export_hf_check.py --write-ids ids.i32 --n-ids 256 --vocab 96 --seed 7
  palu-export --model tests/reference/mla_tiny --to deepseek --out /tmp/ds
  palu-eval ppl --model /tmp/ds --tokens ids.i32 --seqlen 32 --json palu.json
  python3 deepseek_export_hf_check.py --model /tmp/ds --ids ids.i32 --seqlen 32 \\
      --palu-json palu.json --out hf.json [--check]

--check exits 1 when loading reported any missing / unexpected / mismatched key, when the model
is not DeepseekV3ForCausalLM, or when a window NLL of palu-eval differs from the float64 one by more
than --tol nats.
"""
import argparse
import json
import logging
import math
import os
import sys
import time
import warnings


def write_ids(path, n, vocab, seed):
    import numpy as np
    ids = np.random.RandomState(seed).randint(0, vocab, size=n).astype("<i4")
    ids.tofile(path)
    print(f"{n} ids in [0, {vocab}) seed {seed} -> {path}", file=sys.stderr)
    return ids.tolist()


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def load(model_dir, dtype, auto):
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, DeepseekV3ForCausalLM
    cls = AutoModelForCausalLM if auto else DeepseekV3ForCausalLM
    cap = _Capture()
    tlog = logging.getLogger("transformers")
    tlog.addHandler(cap)
    transformers.logging.set_verbosity_warning()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model, info = cls.from_pretrained(model_dir, dtype=dtype, output_loading_info=True)
    finally:
        tlog.removeHandler(cap)
    info = {k: sorted(str(x) for x in v) for k, v in info.items()}
    msgs = cap.lines + [str(w.message) for w in caught]
    return model.eval(), info, msgs


def window_nlls(model, ids, seqlen, max_windows):
    import torch
    n_win = ids.numel() // seqlen
    if max_windows > 0:
        n_win = min(n_win, max_windows)
    out = []
    with torch.no_grad():
        for w in range(n_win):
            x = ids[w * seqlen:(w + 1) * seqlen].unsqueeze(0)
            logits = model(x, use_cache=False).logits[0].double()
            out.append(float(torch.nn.functional.cross_entropy(logits[:-1], x[0, 1:])))
    return out


def summary(nlls):
    mean = sum(nlls) / len(nlls)
    return {"window_nll": nlls, "nll": mean, "ppl": math.exp(mean)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write-ids", default="", help="write random ids to this .i32 file and stop")
    ap.add_argument("--n-ids", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=96)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--model", default="", help="the palu-export --to deepseek directory")
    ap.add_argument("--ids", default="", help="raw little-endian int32 token ids")
    ap.add_argument("--seqlen", type=int, default=32)
    ap.add_argument("--max-windows", type=int, default=0)
    ap.add_argument("--palu-json", default="", help="palu-eval ppl --json output on the same ids")
    ap.add_argument("--tol", type=float, default=1e-5, help="--check bound, nats per window")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    if a.write_ids:
        write_ids(a.write_ids, a.n_ids, a.vocab, a.seed)
        return 0
    if not a.model or not a.ids:
        ap.error("--model and --ids are required (or --write-ids)")

    import numpy as np
    import torch
    import transformers
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    ids = torch.from_numpy(np.fromfile(a.ids, dtype="<i4").astype("int64"))
    t0 = time.time()
    res = {"model": os.path.basename(os.path.normpath(a.model)), "ids": ids.tolist(),
           "seqlen": a.seqlen, "torch": torch.__version__,
           "transformers": transformers.__version__, "device": "cpu"}
    problems = []
    runs = {}
    for name, dtype, auto in (("float64", torch.float64, False),
                              ("float32", torch.float32, False),
                              ("float32_auto", torch.float32, True)):
        model, info, msgs = load(a.model, dtype, auto)
        cls = type(model).__name__
        if cls != "DeepseekV3ForCausalLM":
            problems.append(f"{name}: loaded as {cls}, expected DeepseekV3ForCausalLM")
        for k, v in info.items():
            if v:
                problems.append(f"{name}: {k}: {v}")
        runs[name] = {"class": cls, "loading_info": info, "load_messages": msgs}
        if name != "float32_auto":  # the same weights and class as "float32"
            runs[name].update(summary(window_nlls(model, ids, a.seqlen, a.max_windows)))
        del model
    res["n_windows"] = len(runs["float64"]["window_nll"])
    res["runs"] = runs
    ref = runs["float64"]["window_nll"]
    f32 = runs["float32"]["window_nll"]
    res["max_abs_window_nll_f32_vs_f64"] = max(abs(x - y) for x, y in zip(f32, ref))
    if a.palu_json:
        with open(a.palu_json) as fh:
            palu = json.load(fh)
        pw = palu["window_nll"]
        if len(pw) != len(ref):
            problems.append(f"palu-eval scored {len(pw)} windows, transformers {len(ref)}")
        else:
            worst = max(abs(x - y) for x, y in zip(pw, ref))
            res["palu"] = {"window_nll": pw, "ppl": palu["ppl"],
                           "max_abs_window_nll_vs_f64": worst,
                           "ppl_rel_vs_f64": palu["ppl"] / runs["float64"]["ppl"] - 1}
            if worst > a.tol:
                problems.append(f"palu-eval window NLL differs from float64 transformers by "
                                f"{worst:.3e} nats > --tol {a.tol:g}")
    res["problems"] = problems
    res["seconds"] = time.time() - t0
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(res, fh, indent=1)
    line = (f"transformers ppl f64 {runs['float64']['ppl']:.9f} f32 {runs['float32']['ppl']:.9f} "
            f"(max window diff {res['max_abs_window_nll_f32_vs_f64']:.2e})")
    if "palu" in res:
        line += (f"; palu-eval {res['palu']['ppl']:.9f} (rel {res['palu']['ppl_rel_vs_f64']:.2e}, "
                 f"max window diff {res['palu']['max_abs_window_nll_vs_f64']:.2e})")
    print(line)
    for m in runs["float32"]["load_messages"]:
        print(f"load message: {m}", file=sys.stderr)
    for p in problems:
        print(f"problem: {p}", file=sys.stderr)
    return 1 if (a.check and problems) else 0


if __name__ == "__main__":
    sys.exit(main())
