#!/usr/bin/env python3
"""One row of the ZO2 comparison (bench/zo2_compare.py) on the ZO2 side: MeZO steps of ZO2's
OPT (https://github.com/liangyuwang/zo2, a checkout outside this repository) on a named OPT
shape with random weights and random tokens, offloaded (ZO2's ZO-Offloading) or resident
(ZO2's MeZO), and one JSON line with the median step time, tokens/s and PyTorch's peaks.

    python3 bench/zo2_step.py --zo2 /tmp/zo2 --shape opt-1.3b --batch 1 --seq 2048 \\
        --dtype fp16 --mode offloaded --steps 4

The model is the one ZOTune's `bench zo-step` builds (tied embeddings, OPT-350M's projections
and post-norm), not ZO2's own benchmark variant (untied head; `--untied` gives that). ZO2
pins transformers 4.51.x: put such a transformers first on PYTHONPATH.
"""
import argparse
import json
import statistics
import sys
import time

# name: (hidden C, blocks L, heads NH, embedding width, pre-norm) — ZOTune's OPTConfig.namedShapes.
SHAPES = {
    "opt-125m": (768, 12, 12, 768, True),
    "opt-350m": (1024, 24, 16, 512, False),
    "opt-1.3b": (2048, 24, 32, 2048, True),
    "opt-2.7b": (2560, 32, 32, 2560, True),
    "opt-6.7b": (4096, 32, 32, 4096, True),
    "opt-13b": (5120, 40, 40, 5120, True),
    "opt-30b": (7168, 48, 56, 7168, True),
    "opt-66b": (9216, 64, 72, 9216, True),
    "opt-175b": (12288, 96, 96, 12288, True),
}
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zo2", required=True, help="the ZO2 checkout (the folder holding zo2/)")
    parser.add_argument("--shape", required=True, choices=sorted(SHAPES))
    parser.add_argument("--layers", type=int, help="keep the shape's first N blocks")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp16", help="the model's dtype (ZO2's --model_dtype)")
    parser.add_argument("--mode", choices=["offloaded", "resident"], required=True)
    parser.add_argument("--steps", type=int, default=4, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--device", default="cuda:0", help="cuda:N, or cpu (resident only: a smoke test)")
    parser.add_argument("--untied", action="store_true", help="an untied LM head, as ZO2's own benchmark")
    return parser.parse_args()


def build(args, torch):
    sys.path.insert(0, args.zo2)
    from transformers import OPTConfig
    from zo2.config.mezo_sgd import MeZOSGDConfig
    from zo2.model.huggingface.opt.mezo_sgd import zo, zo2

    hidden, layers, heads, embed, pre_norm = SHAPES[args.shape]
    if args.layers is not None:
        if not 1 <= args.layers <= layers:
            raise SystemExit(f"--layers {args.layers}: {args.shape} has {layers} blocks")
        layers = args.layers
    config = OPTConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, ffn_dim=4 * hidden,
                       word_embed_proj_dim=embed, do_layer_norm_before=pre_norm, max_position_embeddings=2048,
                       tie_word_embeddings=not args.untied, dropout=0.0, attention_dropout=0.0)
    offloaded = args.mode == "offloaded"
    zo_config = MeZOSGDConfig(lr=1e-6, weight_decay=0.0, eps=1e-3, working_device=args.device, zo2=offloaded)
    default = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, DTYPES[args.dtype]))
    torch.manual_seed(1)
    try:
        model = zo2.OPTForCausalLM(config) if offloaded else zo.OPTForCausalLM(config).to(args.device)
        model.zo_init(zo_config)
    finally:
        torch.set_default_dtype(default)
    return model, layers


def main():
    args = parse_args()
    import torch

    cuda = args.device.startswith("cuda")
    if args.mode == "offloaded" and not cuda:
        raise SystemExit("ZO2's offloading needs a CUDA device")
    started = time.perf_counter()
    model, layers = build(args, torch)
    built = time.perf_counter() - started
    parameters = sum(p.numel() for p in model.parameters())
    generator = torch.Generator().manual_seed(7)
    ids = torch.randint(0, model.config.vocab_size, (args.batch, args.seq), generator=generator).to(args.device)
    if cuda:
        torch.cuda.reset_peak_memory_stats()

    def step():
        model.zo_train()
        loss = model(input_ids=ids, labels=ids)
        if cuda:
            torch.cuda.synchronize()
        return float(loss)

    for _ in range(args.warmup):
        step()
    times, losses = [], []
    for _ in range(args.steps):
        start = time.perf_counter()
        losses.append(step())
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(json.dumps({
        "implementation": "zo2", "mode": args.mode, "dtype": args.dtype, "shape": args.shape, "blocks": layers,
        "batch": args.batch, "seq": args.seq, "parameters": parameters, "tied": not args.untied, "device": args.device,
        "device_name": torch.cuda.get_device_name(args.device) if cuda else "cpu",
        "torch": torch.__version__, "transformers": __import__("transformers").__version__,
        "warmup_steps": args.warmup, "steps": args.steps, "seconds_to_build": built,
        "seconds_per_step_median": median, "seconds_per_step_min": min(times),
        "tokens_per_s": args.batch * args.seq / median, "last_loss": losses[-1],
        "torch_max_allocated_bytes": torch.cuda.max_memory_allocated(args.device) if cuda else None,
        "torch_max_reserved_bytes": torch.cuda.max_memory_reserved(args.device) if cuda else None,
    }))


if __name__ == "__main__":
    main()
