#!/usr/bin/env python3
"""LoRA adapters between ZOTune and the Hugging Face stack, both ways, checked with peft itself.

    python3 scripts/check-peft.py --zotune .build/release/zotune

For a Llama and an OPT fixture model (safetensors folders transformers loads):
- ZOTune -> peft: `zotune train --lora` (MeZO, and a population on the Llama) trains an adapter
  of the fixture on random token ids (and a hybrid run: the last block's factors by AdamW); peft's `PeftModel.from_pretrained(base, run/adapter)` gives
  the loss ZOTune's last evaluation gave (the adapter added at rest, not merged), and
  transformers gives it too for `--merge`'s run/model;
- peft -> ZOTune: peft makes an adapter with random A and B (init_lora_weights=False) and saves
  it; `zotune loss --adapter` (merged on load) and `zotune train --adapter --steps 0` (added at
  rest) give peft's loss; `zotune train --adapter` trains it further and peft loads the result
  with the loss ZOTune reports.
Losses agree within 1e-5 relative (float32 sums in another order). torch (the machine's CPU wheel),
transformers and peft, pinned, are installed once into $ZOTUNE_HOME/peft-check.
Prints what it measured; exits non-zero on the first mismatch.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

from checklib import install
import checklib

PINNED = ["torch==2.13.0+cpu", "transformers==5.24.0", "peft==0.21.2"]
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = {"llama": os.path.join(ROOT, "Tests/ZOTuneTests/Fixtures/llama/llama-gqa-f32"),
            "opt": os.path.join(ROOT, "Tests/ZOTuneTests/Fixtures/opt/opt-tiny-f32")}
TARGETS = {"llama": "all-linear", "opt": "q_proj,v_proj,fc1"}
TOLERANCE = 1e-5


def fail(message):
    checklib.fail("check-peft", message)


def zotune(binary, *args):
    result = subprocess.run([binary, *args], capture_output=True, text=True)
    if result.returncode != 0:
        fail(f"zotune {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result.stdout


def last_eval_loss(run):
    """eval_loss of the run's last evaluation (metrics.jsonl)."""
    losses = [line["eval"]["eval_loss"] for line in map(json.loads, open(os.path.join(run, "metrics.jsonl")))
              if "eval" in line]
    return losses[-1]


def hf_loss(model, ids):
    import torch
    with torch.no_grad():
        tokens = torch.tensor([ids])
        return model(input_ids=tokens, labels=tokens).loss.item()


def agree(what, ours, theirs):
    gap = abs(ours - theirs) / abs(theirs)
    print(f"check-peft: {what}: zotune {ours:.7f}, reference {theirs:.7f} (relative gap {gap:.1e})", flush=True)
    if gap > TOLERANCE:
        fail(f"{what}: {ours} vs {theirs}")


def write_ids(path, rows):
    with open(path, "w") as f:
        for ids in rows:
            f.write(json.dumps({"ids": ids}) + "\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--zotune", required=True)
    binary = os.path.abspath(parser.parse_args().zotune)
    install("peft-check", PINNED)
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    import torch
    import transformers
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    torch.manual_seed(0)

    def base(name):
        return AutoModelForCausalLM.from_pretrained(FIXTURES[name], dtype=torch.float32).eval()

    with tempfile.TemporaryDirectory() as scratch:
        for name, folder in FIXTURES.items():
            vocab = json.load(open(os.path.join(folder, "config.json")))["vocab_size"]
            generator = random.Random(7)
            train, held_out = os.path.join(scratch, name + "-train.jsonl"), os.path.join(scratch, name + "-eval.jsonl")
            write_ids(train, [[generator.randrange(vocab) for _ in range(12)] for _ in range(16)])
            eval_ids = [generator.randrange(vocab) for _ in range(16)]
            write_ids(held_out, [eval_ids])
            common = ["--model", folder, "--task", "lm", "--data", train, "--eval-data", held_out, "--batch-size", "4",
                      "--eps", "1e-2", "--threads", "2"]

            # ZOTune -> peft.
            estimators = {"mezo": ["--zo", "mezo", "--lr", "0.05"]}
            if name == "llama":
                estimators["population"] = ["--zo", "population", "--queries", "3", "--lr", "0.05"]
                estimators["hybrid"] = ["--zo", "mezo", "--lr", "0.05", "--fo-blocks", "1", "--fo-lr", "1e-2"]
            for label, estimator in estimators.items():
                run = os.path.join(scratch, f"{name}-{label}")
                zotune(binary, "train", *common, *estimator, "--steps", "6", "--lora", "4", "--lora-targets", TARGETS[name],
                       "--output", run, "--merge")
                config = json.load(open(os.path.join(run, "adapter", "adapter_config.json")))
                peft_model = PeftModel.from_pretrained(base(name), os.path.join(run, "adapter")).eval()
                moved = max(p.abs().max().item() for n, p in peft_model.named_parameters() if ".lora_B." in n)
                if moved == 0:
                    fail(f"{run}: every lora_B is zero: the adapter did not train")
                agree(f"{name} {label} (r {config['r']}, {len(config['target_modules'])} module kinds) trained by zotune, "
                      "loaded by peft", last_eval_loss(run), hf_loss(peft_model, eval_ids))
                merged = AutoModelForCausalLM.from_pretrained(os.path.join(run, "model"), dtype=torch.float32).eval()
                agree(f"{name} {label} merged by zotune (--merge), loaded by transformers", last_eval_loss(run),
                      hf_loss(merged, eval_ids))

            # peft -> ZOTune.
            targets = TARGETS[name]
            config = LoraConfig(r=4, lora_alpha=8, target_modules=targets if targets == "all-linear" else targets.split(","),
                                init_lora_weights=False, use_rslora=name == "llama")
            peft_model = get_peft_model(base(name), config).eval()
            adapter = os.path.join(scratch, name + "-peft-adapter")
            peft_model.save_pretrained(adapter)
            reference = hf_loss(peft_model, eval_ids)
            ids_file = os.path.join(scratch, "ids.json")
            json.dump([eval_ids], open(ids_file, "w"))
            loss = json.loads(zotune(binary, "loss", "--model", folder, "--adapter", adapter, "--ids-file", ids_file))["loss"]
            agree(f"{name} adapter made by peft, merged by zotune loss --adapter", loss, reference)
            at_rest = os.path.join(scratch, name + "-at-rest")
            zotune(binary, "train", *common, "--zo", "mezo", "--lr", "0.05", "--steps", "0", "--adapter", adapter, "--output", at_rest)
            agree(f"{name} adapter made by peft, added at rest by zotune train --adapter", last_eval_loss(at_rest), reference)
            further = os.path.join(scratch, name + "-further")
            zotune(binary, "train", *common, "--zo", "mezo", "--lr", "0.05", "--steps", "4", "--adapter", adapter, "--output", further)
            trained = PeftModel.from_pretrained(base(name), os.path.join(further, "adapter")).eval()
            agree(f"{name} peft's adapter trained further by zotune, loaded by peft", last_eval_loss(further),
                  hf_loss(trained, eval_ids))
    print("check-peft: ok")


if __name__ == "__main__":
    main()
