#!/usr/bin/env python3
"""Writes the committed seed corpora of scripts/fuzz.sh (Fuzz/Corpus/<target>/) that the test
fixtures do not provide: hand-made inputs of each format, and a checkpoint's state.json, a
trajectory and metrics.jsonl from a 4-step run of the OPT fixture.

    python3 Fuzz/make-seeds.py --zotune .build/debug/zotune

Inputs the fuzzer found crashing are added beside these by hand (named for what they broke)."""
import argparse
import json
import os
import random
import shutil
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "Fuzz", "Corpus")


def write(target, name, data):
    os.makedirs(os.path.join(CORPUS, target), exist_ok=True)
    with open(os.path.join(CORPUS, target, name), "wb") as file:
        file.write(data if isinstance(data, bytes) else data.encode())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--zotune", required=True)
    args = parser.parse_args()
    rng = random.Random(7)
    # dequantize: a type index (modulo the dequantizable types), then that many blocks' bytes.
    for index, count in [(3, 34 * 2), (8, 210), (10, 144), (1, 16)]:
        write("dequantize", f"type-{index}.bin", bytes([index]) + bytes(rng.randrange(256) for _ in range(count)))
    vocabulary = {"h": 0, "e": 1, "l": 2, "o": 3, "Ġ": 4, "w": 5, "r": 6, "d": 7, "he": 8, "ll": 9, "hell": 10,
                  "hello": 11, "<|endoftext|>": 12}
    write("vocab-merges", "tiny.bin", json.dumps(vocabulary).encode() + b"\0" + b"#version: 0.2\nh e\nl l\nhe ll\nhell o\n")
    for name, text in [("ascii", "Hello world, it's 12:30."), ("unicode", "naïve café 東京 🙂 \u200b\t\n  x"),
                       ("special", "<|begin_of_text|><|im_start|>user\nhi<|im_end|></s><s>")]:
        write("encode", f"{name}.txt", bytes([0]) + text.encode())
    config = {"bos_token": "<s>", "eos_token": {"content": "</s>", "special": True}, "pad_token": None,
              "chat_template": "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
                               "{% if add_generation_prompt %}<|assistant|>{% endif %}"}
    write("tokenizer-config", "tokenizer_config.json", json.dumps(config, indent=2))
    lines = {
        "ids.jsonl": [{"ids": [5, 9, 3, 17]}, {"text": "Hello there."}],
        "sst2.jsonl": [{"sentence": "a gripping film", "label": 1}, {"sentence": "dull", "label": 0}],
        "rte.jsonl": [{"premise": "A cat sat.", "hypothesis": "An animal sat.", "label": 0}],
        "copa.jsonl": [{"premise": "It rained.", "choice1": "We stayed in.", "choice2": "We swam.", "question": "effect",
                        "label": 0}],
        "squad.jsonl": [{"context": "Paris is in France.", "question": "Where is Paris?",
                         "answers": {"text": ["France"], "answer_start": [12]}}],
        "messages.jsonl": [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}],
        "prompt-completion.jsonl": [{"prompt": "2+2=", "completion": "4"},
                                    {"prompt": [{"role": "user", "content": "2+2?"}],
                                     "completion": [{"role": "assistant", "content": "4"}]}],
    }
    for name, rows in lines.items():
        write("task-data", name, "".join(json.dumps(row) + "\n" for row in rows))
    write("task-data", "sentiment.tsv", "1\t0.9\ta fine film\n2\t-0.4\tdull and long\n")
    # An index over the shard the safetensors-index target writes (`a.safetensors` holding `w`).
    write("safetensors-index", "one-shard.json",
          json.dumps({"metadata": {"total_size": 16}, "weight_map": {"w": "a.safetensors"}}, indent=2) + "\n")

    work = tempfile.mkdtemp()
    data = os.path.join(work, "train.jsonl")
    with open(data, "w") as file:
        file.writelines('{"ids": %s}\n' % ids for ids in [[5, 9, 3, 17, 2, 11], [8, 1, 4, 4, 30], [40, 41, 42, 43], [7, 7, 7]])
    run = os.path.join(work, "run")
    subprocess.run([args.zotune, "train", "--model", os.path.join(ROOT, "Tests/ZOTuneTests/Fixtures/opt/opt-tiny-f32"),
                    "--data", data, "--eval-data", data, "--eval-every", "2", "--batch-size", "2", "--lr", "1e-3",
                    "--steps", "4", "--save-every", "2", "--output", run], check=True, capture_output=True)
    with open(os.path.join(run, "checkpoints", "step-00000004", "state.json"), "rb") as file:
        write("checkpoint-state", "opt-tiny-step-4.json", file.read())
    with open(os.path.join(run, "trajectory.zotraj"), "rb") as file:
        write("trajectory", "opt-tiny-4-steps.zotraj", file.read())
    with open(os.path.join(run, "metrics.jsonl"), "rb") as file:
        write("metrics-jsonl", "opt-tiny-4-steps.jsonl", file.read())
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
