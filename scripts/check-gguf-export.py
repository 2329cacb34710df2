#!/usr/bin/env python3
"""ZOTune's GGUF export read by the real tools: the `gguf` package and llama.cpp.

    python3 scripts/check-gguf-export.py --zotune .build/release/zotune

Exports SmolLM2-135M (the asset) as f32, f16, bf16, q8_0 and q4_0, and a short training run's
folder as f16, then checks:
- the `gguf` package reads every key and tensor; the tokenizer keys are the source file's; the
  quantized files' matrices are byte for byte `gguf.quants.quantize` of the f32 export's;
- ZOTune reloads the f32 export with the source's loss and argmax exactly;
- llama.cpp (llama-cpp-python, built from source once into $ZOTUNE_HOME/llama-cpp-python)
  continues prompts greedily with the same text as `zotune generate` for f32, f16 and the
  training run (loaded by its folder); its logits agree with ZOTune's on the same file within
  0.1 for f32 (llama.cpp keeps its KV cache in f16; measured 0.035 of a 67 span) and 3.0 for
  q8_0 (llama.cpp also rounds activations to 8 bits there; measured 1.37), mean losses within 0.05.
Prints what it measured; exits non-zero on the first mismatch.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

from checklib import HOME, install
import checklib

PINNED = ["llama-cpp-python==0.3.36", "gguf==0.19.0"]
PROMPTS = ["The capital of France is", "def fibonacci(n):", "Once upon a time, in a small village,"]
MAX_TOKENS = 32
F32_LOGIT_BOUND = 0.1  # llama.cpp keeps its KV cache in f16
Q8_LOGIT_BOUND = 3.0  # llama.cpp's q8_0 products round the activations to 8 bits too
MEAN_LOSS_GAP = 0.05


def install_tools():
    """llama-cpp-python (llama.cpp built from source, minutes on 2 cores) and gguf, once."""
    if not os.path.exists(os.path.join(HOME, "llama-cpp-python", ".complete-" + "-".join(PINNED))):
        print("check-gguf-export: building llama.cpp (llama-cpp-python) into", os.path.join(HOME, "llama-cpp-python"), flush=True)
    env = dict(os.environ, CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 2),
               CMAKE_ARGS="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE=OFF")
    install("llama-cpp-python", PINNED, env=env)


def zotune(binary, *args):
    result = subprocess.run([binary, *args], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"zotune {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def fail(message):
    checklib.fail("check-gguf-export", message)


def check_readable(gguf, path, source):
    """Every key and tensor parses; the tokenizer keys are the source file's."""
    reader = gguf.GGUFReader(path)
    for field in reader.fields.values():
        field.contents()
    for tensor in reader.tensors:
        if tensor.data.nbytes != tensor.n_bytes:
            fail(f"{path}: tensor {tensor.name} holds {tensor.data.nbytes} bytes, {tensor.n_bytes} expected")
    original = gguf.GGUFReader(source)
    for key, field in original.fields.items():
        if key.startswith("tokenizer.") and reader.fields[key].contents() != field.contents():
            fail(f"{path}: {key} differs from {source}'s")
    return reader


def check_quantized(gguf, np, exported, reference):
    """Each matrix of `exported` is gguf.quants.quantize of the f32 export's values."""
    f32 = {t.name: t for t in reference.tensors}
    checked = 0
    for tensor in exported.tensors:
        source = np.asarray(f32[tensor.name].data, dtype=np.float32)
        if tensor.tensor_type == gguf.GGMLQuantizationType.F32:
            same = np.array_equal(np.asarray(tensor.data).view(np.uint8), source.view(np.uint8))
        else:
            expected = gguf.quants.quantize(source, tensor.tensor_type)
            same = np.array_equal(np.asarray(tensor.data).view(np.uint8).reshape(-1), expected.view(np.uint8).reshape(-1))
        if not same:
            fail(f"{tensor.name} ({tensor.tensor_type.name}) is not gguf.quants.quantize's")
        checked += 1
    return checked


def llama_greedy(llama_cpp, path, prompt):
    llm = llama_cpp.Llama(model_path=path, n_ctx=256, n_threads=os.cpu_count() or 2, verbose=False)
    tokens = llm.tokenize(prompt.encode(), add_bos=llm.metadata.get("tokenizer.ggml.add_bos_token") == "true", special=False)
    out = []
    for token in llm.generate(tokens, temp=0.0, top_k=1, reset=True):
        if token == llm.token_eos() or len(out) == MAX_TOKENS:
            break
        out.append(token)
    return prompt + llm.detokenize(out).decode("utf-8", errors="replace")


def compare_greedy(llama_cpp, binary, path, model):
    for prompt in PROMPTS:
        ours = zotune(binary, "generate", "--model", model, "--prompt", prompt, "--max-tokens", str(MAX_TOKENS)).rstrip("\n")
        theirs = llama_greedy(llama_cpp, path, prompt)
        print(f"  {os.path.basename(path)}: {theirs!r}", flush=True)
        if ours != theirs:
            fail(f"{path}: llama.cpp continues {prompt!r} as {theirs!r}, zotune generate as {ours!r}")


def llama_logits(llama_cpp, np, path, ids):
    llm = llama_cpp.Llama(model_path=path, n_ctx=256, n_threads=os.cpu_count() or 2, verbose=False, logits_all=True)
    llm.eval(ids)
    return np.asarray(llm.scores[:len(ids)], dtype=np.float64)


def zotune_logits(np, binary, path, ids, tmp):
    out = os.path.join(tmp, "logits.f32")
    zotune(binary, "loss", "--model", path, "--ids", ",".join(map(str, ids)), "--logits-file", out)
    return np.fromfile(out, dtype="<f4").astype(np.float64).reshape(len(ids), -1)


def compare_logits(np, theirs, ours, ids, label, bound):
    """Max |Δlogit| (bounded), mean loss of each and arg-max agreement."""
    def losses(logits):
        shifted = logits - logits.max(axis=1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return np.array([-logp[t, ids[t + 1]] for t in range(len(ids) - 1)])
    worst = float(np.abs(theirs - ours).max())
    agree = float(np.mean(theirs.argmax(axis=1) == ours.argmax(axis=1)))
    print(f"{label}: max |Δlogit| llama.cpp vs zotune {worst:.5f} (bound {bound}; logits span "
          f"{float(ours.max() - ours.min()):.1f}), mean loss {losses(theirs).mean():.5f} vs {losses(ours).mean():.5f}, "
          f"arg-max agreement {agree:.3f}", flush=True)
    if worst > bound or abs(losses(theirs).mean() - losses(ours).mean()) > MEAN_LOSS_GAP:
        fail(f"{label}: logits differ by {worst}, mean losses by more than {MEAN_LOSS_GAP}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--zotune", required=True)
    binary = os.path.abspath(parser.parse_args().zotune)
    install_tools()
    import gguf
    import llama_cpp
    import numpy as np
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(HOME, "assets/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf")
        files = {}
        for kind in ["f32", "f16", "bf16", "q8_0", "q4_0"]:
            files[kind] = os.path.join(tmp, f"smollm2-{kind}.gguf")
            zotune(binary, "export", "smollm2-135m", files[kind], "--type", kind)
        reference = check_readable(gguf, files["f32"], source)
        print(f"gguf reads {len(reference.fields)} keys and {len(reference.tensors)} tensors of the f32 export", flush=True)
        for kind in ["f16", "bf16", "q8_0", "q4_0"]:
            checked = check_quantized(gguf, np, check_readable(gguf, files[kind], source), reference)
            print(f"{kind}: {checked} tensors equal gguf.quants.quantize of the f32 export's", flush=True)

        text = "The quick brown fox jumps over the lazy dog. Paris is the capital of France; 12 + 30 = 42."
        ids = json.loads(zotune(binary, "tokenize", "--tokenizer", "smollm2-135m", "--text", text))["ids"]
        id_list = ",".join(map(str, ids))
        loss = lambda model: json.loads(zotune(binary, "loss", "--model", model, "--ids", id_list).splitlines()[0])
        if loss(files["f32"]) != loss("smollm2-135m"):
            fail("zotune's loss on its f32 export differs from the source's")
        print("zotune reloads its f32 export with the source's loss and argmax exactly", flush=True)

        compare_greedy(llama_cpp, binary, files["f32"], files["f32"])
        compare_greedy(llama_cpp, binary, files["f16"], files["f16"])
        print(f"llama.cpp's greedy continuations equal zotune generate's (f32, f16; {len(PROMPTS)} prompts, "
              f"{MAX_TOKENS} tokens)", flush=True)

        compare_logits(np, llama_logits(llama_cpp, np, files["f32"], ids), zotune_logits(np, binary, files["f32"], ids, tmp),
                       ids, "f32", F32_LOGIT_BOUND)
        compare_logits(np, llama_logits(llama_cpp, np, files["q8_0"], ids), zotune_logits(np, binary, files["q8_0"], ids, tmp),
                       ids, "q8_0", Q8_LOGIT_BOUND)

        # A training run's folder: trained, exported by train itself, run by llama.cpp and by zotune from the folder.
        data = os.path.join(tmp, "ids.jsonl")
        with open(data, "w") as f:
            f.write(json.dumps({"ids": ids}) + "\n")
        run, run_gguf = os.path.join(tmp, "run"), os.path.join(tmp, "run.gguf")
        zotune(binary, "train", "--model", "smollm2-135m", "--task", "lm", "--data", data, "--steps", "2", "--lr", "1e-4",
               "--output", run, "--output-gguf", run_gguf, "--gguf-type", "f32")
        compare_greedy(llama_cpp, binary, run_gguf, run)
        print("a training run's --output-gguf continues as `zotune generate --model RUN` does", flush=True)
    print("check-gguf-export: passed")


if __name__ == "__main__":
    main()
