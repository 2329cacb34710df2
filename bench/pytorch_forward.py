#!/usr/bin/env python3
"""PyTorch reference for `zotune bench forward`: Hugging Face's OPTForCausalLM (or, for
smollm2-135m, LlamaForCausalLM) forward pass (logits and loss, fp32, no grad) on a named shape
with random weights.

    python3 bench/pytorch_forward.py --shape opt-125m --batch 4 --seq 128 --threads 2
Prints one JSON line with the median seconds per forward and tokens/s.
"""
import argparse
import json
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM, OPTConfig, OPTForCausalLM

SHAPES = {
    "opt-125m": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12),
    "opt-350m": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, word_embed_proj_dim=512,
                     do_layer_norm_before=False),
    "opt-1.3b": dict(hidden_size=2048, num_hidden_layers=24, num_attention_heads=32),
}
# Llama-family shapes (their config.json), as ZOTune's LlamaConfig.namedShapes.
LLAMA_SHAPES = {
    "smollm2-135m": dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                         intermediate_size=1536, vocab_size=49152, max_position_embeddings=8192, rope_theta=100000.0,
                         tie_word_embeddings=True, rms_norm_eps=1e-5),
}


def workload(iterations, extra=()):
    """Parses --shape/--batch/--seq/--threads/--iterations and the `extra` (flag, type, default)
    options; returns (args, random model, ids)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", default="opt-125m", choices=sorted(SHAPES) + sorted(LLAMA_SHAPES))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=iterations)
    for flag, kind, default in extra:
        parser.add_argument(flag, type=kind, default=default)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.shape in LLAMA_SHAPES:
        model = LlamaForCausalLM(LlamaConfig(**LLAMA_SHAPES[args.shape])).eval()
    else:
        overrides = SHAPES[args.shape]
        model = OPTForCausalLM(OPTConfig(**overrides, ffn_dim=4 * overrides["hidden_size"], vocab_size=50272)).eval()
    ids = torch.randint(0, model.config.vocab_size, (args.batch, args.seq))
    return args, model, ids


def main():
    args, model, ids = workload(iterations=5)
    with torch.no_grad():
        model(input_ids=ids, labels=ids)  # warm-up
        times = []
        for _ in range(args.iterations):
            start = time.perf_counter()
            loss = model(input_ids=ids, labels=ids).loss.item()
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(json.dumps({"bench": "forward", "implementation": "pytorch", "torch": torch.__version__,
                      "attention": model.config._attn_implementation, "shape": args.shape,
                      "threads": args.threads, "batch": args.batch, "seq": args.seq, "iterations": args.iterations,
                      "seconds_median": median, "seconds_min": min(times),
                      "tokens_per_s": args.batch * args.seq / median, "loss": loss}))


if __name__ == "__main__":
    main()
