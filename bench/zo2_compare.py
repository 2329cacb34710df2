#!/usr/bin/env python3
"""ZOTune against ZO2 on OPT shapes with random weights: the first seed's table, side by side.

    zo2_compare.py predict [--host-memory 128GiB]          memory model only (no GPU): Markdown
    zo2_compare.py run --zotune BIN --zo2 DIR --out F.jsonl  measure rows on the GPU: JSON lines
    zo2_compare.py report F.jsonl [F2.jsonl ...]            the measured table, goals and bounds
    zo2_compare.py check [--zotune BIN]                     the harness against the CLI, on the CPU (the test suite runs it)

A row is an OPT shape (its first N blocks when the host copy would not fit host memory), a
workload (B × T tokens) and a precision: "fp32" (ZOTune fp32; ZO2 fp32) or "half" (ZOTune's
bf16 link and host master, fp32 values with TF32 GEMMs on tensor cores, `--tf32`, resident
with fp32 weights; ZO2 in fp16, as its published numbers). Each row
runs up to four implementations, each in a process of its own, one at a time:
zotune-resident, zotune-offloaded (`zotune bench zo-step --backend cuda`), zo2-offloaded and
zo2-resident (bench/zo2_step.py; ZO2's resident mode is MeZO); half rows add ZOTune's
low-memory variants, zotune-offloaded-by-tensor (bf16, `--decode-by-tensor`) and
zotune-offloaded-fp8-by-tensor. While one runs, this process
(which never touches CUDA itself) samples NVML's device-wide used memory, as ZO2's own
benchmark reads it, and the child's resident set. ZOTune's arena is sized to the memory
model's prediction plus a small margin, so its device-wide figure is the arena, the CUDA
context and the libraries' own allocations.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from zo2_step import SHAPES as OPT_SHAPES  # noqa: E402  (name: C, L, NH, embedding width, pre-norm)

SHAPES = list(OPT_SHAPES)
IMPLEMENTATIONS = ["zotune-resident", "zotune-offloaded", "zotune-offloaded-by-tensor", "zotune-offloaded-fp8-by-tensor",
                   "zo2-offloaded", "zo2-resident"]
# The columns of the main table; the by-tensor variants get a table of their own.
COLUMNS = ["zotune-resident", "zotune-offloaded", "zo2-offloaded", "zo2-resident"]
VARIANTS = {"zotune-offloaded-by-tensor": "bf16", "zotune-offloaded-fp8-by-tensor": "fp8"}
PRECISIONS = ["fp32", "half"]
GiB = 1 << 30
# Bytes an arena gets beyond the prediction, a safety margin only: the arena's high-water mark
# should equal the prediction (the report flags a row where it does not).
ARENA_MARGIN = 16 << 20
# The first seed's table (../shared/seeds/001, "Experiment Results Compared with MeZO"; batch
# 1 × 2048 as ZO2's README): GPU memory in MB and tokens/s for MeZO(32), ZO-Offload(32),
# MeZO(16), ZO-Offload(16); None where the seed has none.
SEED = {
    "opt-125m": ((3091, 2941, 1801, 1661), (14889, 13074, 31058, 31058)),
    "opt-350m": ((4219, 3393, 2389, 1643), (5274, 5099, 13508, 12284)),
    "opt-1.3b": ((9117, 4413, 4887, 2651), (1954, 1954, 6788, 6788)),
    "opt-2.7b": ((15277, 5261, 7933, 3111), (1087, 1087, 4227, 4227)),
    "opt-6.7b": ((32083, 8329, 16311, 4539), (499, 499, 2455, 2455)),
    "opt-13b": ((58251, 12113, 29411, 6445), (270, 270, 1406, 1340)),
    "opt-30b": ((None, 18879, 63953, 10369), (None, 122, 651, 597)),
    "opt-66b": ((None, 29937, None, 14143), (None, 40, None, 273)),
    "opt-175b": ((None, 49203, None, 24667), (None, 14, None, 37)),
}


def size(text):
    """Bytes in '128GiB', '80GB' or a plain number."""
    units = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}
    match = re.fullmatch(r"\s*([0-9.eE+]+)\s*([KMGT]i?B)?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size such as 128GiB")
    return int(float(match.group(1)) * units.get(match.group(2), 1))


def gib(value):
    return "–" if value is None else f"{value / GiB:.2f}"


class Planner:
    """`zotune plan --json` for rows: predictions and the blocks that fit host memory."""

    def __init__(self, zotune, host_budget, max_truncated_layers):
        self.zotune, self.host_budget, self.max_truncated_layers = zotune, host_budget, max_truncated_layers
        self.cache = {}

    def plan(self, shape, batch, seq, codec, layers=None, by_tensor=False):
        key = (shape, batch, seq, codec, layers, by_tensor)
        if key not in self.cache:
            command = [self.zotune, "plan", "--json", "--zo", "mezo", "--shape", shape, "--batch", str(batch), "--seq", str(seq),
                       "--codec", codec]
            if layers is not None:
                command += ["--layers", str(layers)]
            if by_tensor:
                command += ["--decode-by-tensor"]
            self.cache[key] = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        return self.cache[key]

    @staticmethod
    def host_bytes(plan):
        return max(plan["offloaded"]["hostModelBytes"] + plan["offloaded"]["hostMasterBytes"],
                   plan["resident"]["hostModelBytes"] + plan["resident"]["hostMasterBytes"])

    def layers(self, shape, batch, seq, codec):
        """None for the whole shape when its host copy fits; else the blocks that fit (capped)."""
        full = self.plan(shape, batch, seq, codec)
        if self.host_bytes(full) <= self.host_budget:
            return None
        one, two = (self.host_bytes(self.plan(shape, batch, seq, codec, n)) for n in (1, 2))
        fitting = 1 + (self.host_budget - one) // (two - one)
        return max(1, min(fitting, self.max_truncated_layers, full["blocks"]))


def codec(precision):
    return "fp32" if precision == "fp32" else "bf16"


def zo2_dtype(precision, half):
    return "fp32" if precision == "fp32" else half


def step_flops(shape, blocks, batch, seq, vocab=50272):
    """Multiply-adds × 2 of a step's two forward passes (as `zotune bench forward` counts one)."""
    hidden, _, _, embed, _ = OPT_SHAPES[shape]
    ffn = 4 * hidden
    matrices = blocks * (4 * hidden * hidden + 2 * hidden * ffn) + vocab * embed + (2 * hidden * embed if embed != hidden else 0)
    forward = 2 * matrices * batch * seq + blocks * batch * 2 * seq * (seq + 1) * hidden
    return 2 * forward


# ---------------------------------------------------------------------------------------------
# predict


def predict(args):
    planner = Planner(args.zotune, args.host_memory * args.host_fraction, args.max_truncated_layers)
    link = args.link_gbps * 1e9
    print(f"# ZOTune's memory model for the ZO2 comparison (`zotune plan`; 2 slots, fp32 compute)\n")
    print(f"Host memory assumed: {gib(args.host_memory)} GiB, of which {args.host_fraction:.0%} for the model. "
          f"Bounds on the full model's tokens/s: the link at {args.link_gbps:g} GB/s each way (both directions at once), "
          f"and the two forward passes' FLOPs at {args.fp32_tflops:g} TFLOP/s of strict fp32 GEMM (fp32 rows) or "
          f"{args.tf32_tflops:g} TFLOP/s of TF32 (half rows, `--tf32`); ZOTune's offloaded step can be no faster than the lower.\n")
    for batch, seq in args.workloads:
        print(f"## {batch} × {seq} tokens\n")
        print("| model | blocks run | precision | resident peak, GiB | offloaded peak, GiB | by tensor: bf16 / fp8, GiB | host memory, GiB "
              "| link per step up / down, GiB | link-bound tokens/s | GEMM-bound tokens/s | seed ZO-Offload MB, tokens/s |")
        print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for shape in args.shapes:
            for precision in args.precisions:
                layers = planner.layers(shape, batch, seq, codec(precision))
                plan = planner.plan(shape, batch, seq, codec(precision), layers)
                offloaded = plan["offloaded"]
                up, down = offloaded["uploadBytesPerStep"], offloaded["downloadBytesPerStep"]
                full = planner.plan(shape, batch, seq, codec(precision))["offloaded"]
                bound = batch * seq / (max(full["uploadBytesPerStep"], full["downloadBytesPerStep"]) / link)
                blocks_full = planner.plan(shape, batch, seq, "fp32")["blocks"]
                rate = (args.fp32_tflops if precision == "fp32" else args.tf32_tflops) * 1e12
                compute = batch * seq / (step_flops(shape, blocks_full, batch, seq) / rate)
                blocks = f"{plan['blocks']}" + (f" of {planner.plan(shape, batch, seq, 'fp32')['blocks']}" if layers else "")
                resident = gib(plan["resident_peak_device_bytes"]) + (" (fp32 weights)" if precision == "half" else "")
                memory, speed = SEED[shape]
                column = 1 if precision == "fp32" else 3
                seed = f"{memory[column]}, {speed[column]}" if (batch, seq) == (1, 2048) else "–"
                variants = "–" if precision == "fp32" else " / ".join(
                    gib(planner.plan(shape, batch, seq, name, layers, by_tensor=True)["offloaded_peak_device_bytes"]) for name in ("bf16", "fp8"))
                print(f"| {shape} | {blocks} | {precision} | {resident} | {gib(plan['offloaded_peak_device_bytes'])} | {variants} | "
                      f"{gib(Planner.host_bytes(plan))} | {gib(up)} / {gib(down)} | {bound:.0f} | {compute:.0f} | {seed} |")
        print()
    print("## The full OPT-66B and OPT-175B (plan only; their rows above run truncated)\n")
    print("| model | workload | codec | offloaded peak, GiB | within 24 GB | within 12 GB | host memory, GiB | link per step, each way, GiB |")
    print("|---|---|---|---:|---|---|---:|---:|")
    for shape in ("opt-66b", "opt-175b"):
        for batch, seq in args.workloads:
            for name, by_tensor in (("fp32", False), ("bf16", False), ("fp8", False), ("bf16", True), ("fp8", True)):
                plan = planner.plan(shape, batch, seq, name, by_tensor=by_tensor)
                peak = plan["offloaded_peak_device_bytes"]
                print(f"| {shape} | {batch} × {seq} | {name}{', by tensor' if by_tensor else ''} | {gib(peak)} | {'yes' if peak <= 24e9 else 'no'} | "
                      f"{'yes' if peak <= 12e9 else 'no'} | {gib(Planner.host_bytes(plan))} | {gib(plan['offloaded']['uploadBytesPerStep'])} |")


# ---------------------------------------------------------------------------------------------
# run


class Sampler(threading.Thread):
    """Polls NVML's device-wide used memory and a process's resident set until stopped."""

    def __init__(self, nvml, handle, pid, interval=0.01):
        super().__init__(daemon=True)
        self.nvml, self.handle, self.pid, self.interval = nvml, handle, pid, interval
        self.device_peak, self.rss_peak = None, 0
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            if self.nvml:
                used = self.nvml.nvmlDeviceGetMemoryInfo(self.handle).used
                self.device_peak = used if self.device_peak is None else max(self.device_peak, used)
            try:
                with open(f"/proc/{self.pid}/status") as status:
                    rss = next((int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:")), 0)
                self.rss_peak = max(self.rss_peak, rss)
            except (OSError, StopIteration):
                pass
            self.done.wait(self.interval)


def nvml_handle():
    try:
        import pynvml
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        name = pynvml.nvmlDeviceGetName(handle)
        return pynvml, handle, {"device_name": name.decode() if isinstance(name, bytes) else name,
                                "device_memory_bytes": pynvml.nvmlDeviceGetMemoryInfo(handle).total,
                                "driver": pynvml.nvmlSystemGetDriverVersion()}
    except Exception as error:  # no GPU, no NVML: a CPU smoke run
        return None, None, {"device_name": None, "nvml": f"unavailable: {error}"}


def measure(command, env, nvml, handle, timeout):
    """Runs one child; its last stdout line is its JSON report."""
    baseline = nvml.nvmlDeviceGetMemoryInfo(handle).used if nvml else None
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    sampler = Sampler(nvml, handle, child.pid)
    sampler.start()
    try:
        stdout, stderr = child.communicate(timeout=timeout)
        status = "ok" if child.returncode == 0 else f"exit {child.returncode}"
    except subprocess.TimeoutExpired:
        child.kill()
        stdout, stderr = child.communicate()
        status = f"timed out after {timeout} s"
    sampler.done.set()
    sampler.join()
    result = {"status": status, "command": " ".join(command), "wall_seconds": time.perf_counter() - started,
              "device_used_baseline_bytes": baseline, "device_used_peak_bytes": sampler.device_peak,
              "host_rss_peak_bytes": sampler.rss_peak}
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if status == "ok" and lines:
        result["report"] = json.loads(lines[-1])
    else:
        result["stderr_tail"] = (stderr or stdout)[-2000:]
    return result


def calibrate(args):
    """Host↔device bandwidth (pinned, 1 GiB) and PyTorch's GEMM rates, in a child process."""
    import torch

    device = torch.device("cuda")
    size_bytes = 1 << 30
    host = torch.empty(size_bytes, dtype=torch.uint8).pin_memory()
    dev = torch.empty(size_bytes, dtype=torch.uint8, device=device)

    def seconds(body, repeats=5):
        body()
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            body()
        torch.cuda.synchronize()
        return (time.perf_counter() - start) / repeats

    up = size_bytes / seconds(lambda: dev.copy_(host, non_blocking=True))
    down = size_bytes / seconds(lambda: host.copy_(dev, non_blocking=True))
    rates = {}
    for name, dtype, tf32 in (("fp32", torch.float32, False), ("tf32", torch.float32, True),
                              ("bf16", torch.bfloat16, False), ("fp16", torch.float16, False)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a = torch.randn(8192, 8192, device=device, dtype=dtype)
        b = torch.randn(8192, 8192, device=device, dtype=dtype)
        rates[name] = 2 * 8192 ** 3 / seconds(lambda: a @ b) / 1e12
    torch.backends.cuda.matmul.allow_tf32 = False
    print(json.dumps({"host_to_device_bytes_per_s": up, "device_to_host_bytes_per_s": down,
                      "gemm_tflops": rates,
                      "torch": torch.__version__}))


def rows(args, planner):
    for batch, seq in args.workloads:
        for shape in args.shapes:
            for precision in args.precisions:
                layers = planner.layers(shape, batch, seq, codec(precision))
                yield shape, layers, batch, seq, precision


def row_key(record):
    return (record["implementation"], record["shape"], record["layers"], record["batch"], record["seq"], record["precision"])


def run(args):
    nvml, handle, device = nvml_handle()
    host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    planner = Planner(args.zotune, host * args.host_fraction, args.max_truncated_layers)
    done = set()
    for path in args.done:
        if not os.path.exists(path):  # an unmatched shell pattern: nothing measured yet
            print(f"--done: no {path}; nothing skipped for it", file=sys.stderr)
            continue
        with open(path) as lines:
            done |= {row_key(r) for r in map(json.loads, lines) if r.get("implementation") and r.get("status") == "ok"}
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    zo2_env = dict(clean, PYTHONPATH=args.zo2_pythonpath or "", PYTHONUNBUFFERED="1")
    started = time.perf_counter()
    with open(args.out, "a") as out:
        def emit(record):
            out.write(json.dumps(record) + "\n")
            out.flush()
            print(json.dumps({k: v for k, v in record.items() if k not in ("report", "stderr_tail", "command")}), flush=True)
            if record.get("stderr_tail"):
                print(record["stderr_tail"], file=sys.stderr, flush=True)

        meta = dict(device, kind="meta", date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), host_memory_bytes=host,
                    cpu_cores=os.cpu_count(), argv=sys.argv[1:])
        if nvml and not args.no_calibrate:
            calibration = measure([sys.executable, __file__, "calibrate"], clean, nvml, handle, 300)
            meta["calibration"] = calibration.get("report") or calibration
        emit(meta)
        for shape, layers, batch, seq, precision in rows(args, planner):
            plan = planner.plan(shape, batch, seq, codec(precision), layers)
            for implementation in args.implementations:
                if implementation in VARIANTS and precision != "half":
                    continue
                record = {"implementation": implementation, "shape": shape, "layers": layers, "blocks": plan["blocks"],
                          "batch": batch, "seq": seq, "precision": precision}
                if layers and implementation.startswith("zotune-offloaded"):
                    full = planner.plan(shape, batch, seq, VARIANTS.get(implementation, codec(precision)),
                                        by_tensor=implementation in VARIANTS)
                    record["full_model"] = {"blocks": full["blocks"], "predicted_peak_device_bytes": full["offloaded_peak_device_bytes"]}
                if row_key(record) in done:
                    continue
                if time.perf_counter() - started > args.deadline:
                    emit(dict(record, status="not started: --deadline reached"))
                    continue
                command, env, reason = child_command(args, device, planner, plan, record)
                if reason:
                    emit(dict(record, status=f"skipped: {reason}"))
                    continue
                emit(dict(record, **measure(command, env if implementation.startswith("zotune") else zo2_env,
                                            nvml, handle, args.row_timeout)))


def child_command(args, device, planner, plan, row):
    """The child's command line and environment, or the reason this implementation cannot run."""
    memory = device.get("device_memory_bytes")
    shape, batch, seq, precision = row["shape"], row["batch"], row["seq"], row["precision"]
    layers = ["--layers", str(row["layers"])] if row["layers"] else []
    backend = "cuda" if memory else "cpu"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if row["implementation"].startswith("zotune"):
        offloaded = row["implementation"] != "zotune-resident"
        if not offloaded and precision == "half" and args.half_math != "tf32":
            return None, None, "ZOTune keeps resident weights in fp32 (no bf16/fp16 GEMM yet); with --half-math fp32 this is the fp32 row"
        link = VARIANTS.get(row["implementation"], codec(precision))
        by_tensor = row["implementation"] in VARIANTS
        if by_tensor:
            plan = planner.plan(shape, batch, seq, link, row["layers"], by_tensor=True)
        predicted = plan["offloaded_peak_device_bytes" if offloaded else "resident_peak_device_bytes"]
        if memory and predicted + ARENA_MARGIN > memory:
            return None, None, f"predicted peak {gib(predicted)} GiB exceeds the GPU's {gib(memory)} GiB"
        command = [args.zotune, "bench", "zo-step", "--backend", backend, "--shape", shape, *layers, "--batch", str(batch),
                   "--seq", str(seq), "--iterations", str(args.steps), "--device-memory", str(predicted + ARENA_MARGIN)]
        if offloaded:
            command += ["--offload", "--offloaded-only", "--slots", str(args.slots), "--offload-format", link]
        if by_tensor:
            command += ["--decode-by-tensor"]
        if precision == "half" and args.half_math == "tf32" and memory:
            command += ["--tf32"]
        return command, env, None
    if not memory and row["implementation"] == "zo2-offloaded":
        return None, None, "ZO2's offloading needs a CUDA device"
    dtype = zo2_dtype(precision, args.zo2_half)
    if row["implementation"] == "zo2-resident" and memory:
        weights = plan["parameters"] * (4 if dtype == "fp32" else 2)
        if weights > memory:
            return None, None, f"its weights alone ({gib(weights)} GiB) exceed the GPU's {gib(memory)} GiB"
    mode = "offloaded" if row["implementation"] == "zo2-offloaded" else "resident"
    command = [sys.executable, os.path.join(HERE, "zo2_step.py"), "--zo2", args.zo2, "--shape", shape, *layers,
               "--batch", str(batch), "--seq", str(seq), "--dtype", dtype, "--mode", mode, "--steps", str(args.steps),
               "--device", "cuda:0" if memory else "cpu"] + (["--untied"] if args.zo2_untied else [])
    return command, env, None


# ---------------------------------------------------------------------------------------------
# report


def load(paths):
    meta, records = [], {}
    for path in paths:
        with open(path) as lines:
            for record in map(json.loads, lines):
                if record.get("kind") == "meta":
                    meta.append(record)
                else:
                    key = row_key(record)
                    if key not in records or record.get("status") == "ok":
                        records[key] = record
    return meta, records


def report(args):
    meta, records = load(args.files)
    print("# ZOTune against ZO2 (measured)\n")
    for m in meta:
        calibration = m.get("calibration") or {}
        link = calibration.get("host_to_device_bytes_per_s")
        print(f"- {m.get('date')}: {m.get('device_name')} ({gib(m.get('device_memory_bytes'))} GiB, driver {m.get('driver')}), "
              f"{m.get('cpu_cores')} CPU cores, {gib(m.get('host_memory_bytes'))} GiB host memory"
              + (f"; pinned host→device {link / 1e9:.1f} GB/s, device→host {calibration['device_to_host_bytes_per_s'] / 1e9:.1f} GB/s, "
                 f"PyTorch GEMM TFLOP/s {calibration['gemm_tflops']}" if link else ""))
    calibration = next((m["calibration"] for m in meta if isinstance(m.get("calibration"), dict)
                        and "host_to_device_bytes_per_s" in m["calibration"]), None)
    print()
    keys = sorted({(k[1], k[2], k[3], k[4], k[5]) for k in records},
                  key=lambda k: (k[2], k[3], SHAPES.index(k[0]), PRECISIONS.index(k[4])))
    print("tokens/s, and peak GPU memory in GiB: device-wide (NVML) / own count (ZOTune: arena high-water; ZO2: "
          "PyTorch's max reserved). Seed: the first seed's ZO-Offload and MeZO (MB, tokens/s; 1 × 2048).\n")
    print("| model | blocks | B × T | precision | ZOTune resident | ZOTune offloaded | ZO2 offloaded | ZO2 resident | seed ZO-Offload | seed MeZO |")
    print("|---|---:|---|---|---|---|---|---|---|---|")
    goals, unmeasured = [], []
    for shape, layers, batch, seq, precision in keys:
        cells, measured = [], {}
        for implementation in IMPLEMENTATIONS:
            record = records.get((implementation, shape, layers, batch, seq, precision))
            if implementation in COLUMNS:
                cells.append(cell(record))
            if record and record.get("status") == "ok":
                measured[implementation] = record
            elif record:
                unmeasured.append(f"- {implementation}, {shape} ({record.get('blocks')} blocks), {batch} × {seq}, {precision}: "
                                  + record.get("status", "?") + (f" — {record['stderr_tail'][-300:].strip()}" if record.get("stderr_tail") else ""))
        blocks = next(r.get("blocks") for r in records.values() if (r["shape"], r["layers"]) == (shape, layers))
        memory, speed = SEED[shape]
        column = (1, 0) if precision == "fp32" else (3, 2)
        seed = [f"{memory[c]}, {speed[c]}" if (batch, seq) == (1, 2048) and memory[c] else "–" for c in column]
        print(f"| {shape} | {blocks} | {batch} × {seq} | {precision} | " + " | ".join(cells + seed) + " |")
        goals += check_goals(shape, layers, blocks, batch, seq, precision, measured, calibration)
    variant_rows = [k for k in keys if any((v, *k) in records for v in VARIANTS)]
    if variant_rows:
        print("\nZOTune's low-memory variants (half rows): blocks kept encoded on the device, one fused linear decoded at a time.\n")
        print("| model | blocks | B × T | bf16, by tensor | fp8, by tensor |")
        print("|---|---:|---|---|---|")
        for shape, layers, batch, seq, precision in variant_rows:
            blocks = records[next(k for k in records if k[1:] == (shape, layers, batch, seq, precision))]["blocks"]
            cells = [cell(records.get((v, shape, layers, batch, seq, precision))) for v in VARIANTS]
            print(f"| {shape} | {blocks} | {batch} × {seq} | " + " | ".join(cells) + " |")
    truncated = [r for r in records.values() if r.get("full_model") and r.get("status") == "ok"]
    if truncated:
        print("\n## Truncated rows against their full models\n")
        print("The offloaded peak is set by one block, the slots and the resident stages, so with at least as many blocks")
        print("as slots the truncated run's arena high-water should equal the full model's prediction; tokens/s at n of N")
        print("blocks bound the full model's from below (× n/N: the embedding and head are paid once).\n")
        print("| model | B × T | precision | implementation | blocks | tokens/s measured | full model ≥ tokens/s | arena peak, GiB | full model predicted, GiB |")
        print("|---|---|---|---|---|---:|---:|---:|---:|")
        for r in sorted(truncated, key=lambda r: (r["batch"], r["seq"], SHAPES.index(r["shape"]), r["precision"], r["implementation"])):
            report, full = r["report"], r["full_model"]
            print(f"| {r['shape']} | {r['batch']} × {r['seq']} | {r['precision']} | {r['implementation']} | {r['blocks']} of {full['blocks']} | "
                  f"{report['tokens_per_s']:.0f} | {report['tokens_per_s'] * r['blocks'] / full['blocks']:.0f} | "
                  f"{gib(report['peak_device_bytes'])} | {gib(full['predicted_peak_device_bytes'])} |")
    if unmeasured:
        print("\n## Not measured\n")
        print("\n".join(unmeasured))
    print("\n## Goals\n")
    print("\n".join(goals) if goals else "No row has both sides measured yet.")


def cell(record):
    if record is None:
        return "not run"
    if record.get("status") != "ok":
        return record.get("status", "?").split(":")[0]
    report = record["report"]
    own = report.get("peak_device_bytes") or report.get("torch_max_reserved_bytes")
    predicted = report.get("predicted_peak_device_bytes")
    flag = f" (predicted {gib(predicted)})" if predicted is not None and predicted != own else ""
    return f"{report['tokens_per_s']:.0f} tok/s; {gib(record.get('device_used_peak_bytes'))} / {gib(own)}{flag}"


def check_goals(shape, layers, blocks, batch, seq, precision, measured, calibration):
    """The issue's goals for one row, each with the measured numbers; misses name their bound."""
    name = f"{shape}{f' ({blocks} blocks)' if layers else ''}, {batch} × {seq}, {precision}"
    ours, theirs, resident = (measured.get(k) for k in ("zotune-offloaded", "zo2-offloaded", "zotune-resident"))
    lines = []
    if not ours:
        return lines
    speed = ours["report"]["tokens_per_s"]
    if theirs:
        other = theirs["report"]["tokens_per_s"]
        verdict = "met" if speed >= other else "MISSED"
        lines.append(f"- {name}: offloaded tokens/s ≥ ZO2's: {verdict} ({speed:.0f} vs {other:.0f}, ×{speed / other:.2f})")
        ours_peak, their_peak = ours.get("device_used_peak_bytes"), theirs.get("device_used_peak_bytes")
        if ours_peak and their_peak:
            verdict = "met" if ours_peak <= their_peak else "MISSED"
            lines.append(f"- {name}: peak GPU memory ≤ ZO2's: {verdict} ({gib(ours_peak)} vs {gib(their_peak)} GiB device-wide)")
    if resident:
        other = resident["report"]["tokens_per_s"]
        verdict = "met" if speed >= 0.97 * other else "MISSED"
        lines.append(f"- {name}: offloaded ≥ 0.97 × resident: {verdict} ({speed:.0f} vs {other:.0f}, ×{speed / other:.3f})")
    if shape == "opt-175b":
        peaks = [(measured[k]["device_used_peak_bytes"], k) for k in ["zotune-offloaded", *VARIANTS]
                 if k in measured and measured[k].get("device_used_peak_bytes")]
        if peaks:
            peak, which = min(peaks)
            lines.append(f"- {name}: within 24 GB: {'met' if peak <= 24e9 else 'MISSED'}; ≤ 12 GB: {'met' if peak <= 12e9 else 'missed'} "
                         f"({peak / 1e9:.2f} GB device-wide, {which})")
    if any("MISSED" in line for line in lines):
        lines.append("  " + bound(shape, blocks, batch, seq, ours["report"], resident, calibration))
    return lines


def bound(shape, blocks, batch, seq, report, resident, calibration):
    """What bounds an offloaded step: the link, the GEMMs, or the scheduler."""
    step = report["seconds_per_step_median"]
    parts = [f"step {step * 1e3:.0f} ms"]
    if calibration:
        up = report["bytes_uploaded_per_step"] / calibration["host_to_device_bytes_per_s"]
        down = report["bytes_downloaded_per_step"] / calibration["device_to_host_bytes_per_s"]
        math = "tf32" if "TF32" in report.get("backend", "") else "fp32"
        gemm = step_flops(shape, blocks, batch, seq) / (calibration["gemm_tflops"][math] * 1e12)
        parts += [f"link {max(up, down) * 1e3:.0f} ms (up {up * 1e3:.0f}, down {down * 1e3:.0f})",
                  f"{math} GEMM at PyTorch's rate {gemm * 1e3:.0f} ms"]
        largest = max(("the link", max(up, down)), ("GEMM", gemm), key=lambda p: p[1])
    else:
        largest = None
    parts.append(f"compute waited for uploads {report['compute_wait_seconds_per_step'] * 1e3:.0f} ms")
    if resident:
        parts.append(f"resident step {resident['report']['seconds_per_step_median'] * 1e3:.0f} ms")
    if largest:
        verdict = largest[0] if step <= 1.15 * largest[1] else "the scheduler (the step exceeds both the link and GEMM bounds by over 15%)"
        parts.append(f"bound: {verdict}")
    return "bounds: " + "; ".join(parts)


# ---------------------------------------------------------------------------------------------
# check


def check(args):
    """Runs the harness's ZOTune side on the CPU on a tiny row (full and truncated) and checks
    that every run worked, reported the fields the report reads, and that the arena's
    high-water mark equals the prediction: a renamed flag or field fails here, not on a GPU."""
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "rows.jsonl")
        for layers, fraction in ((12, 0.75), (2, 1e-5)):
            argv = ["run", "--zotune", args.zotune, "--zo2", folder, "--shapes", "opt-125m", "--workloads", "1x8", "--steps", "1",
                    "--implementations", ",".join(k for k in IMPLEMENTATIONS if k.startswith("zotune")),
                    "--max-truncated-layers", str(layers), "--host-fraction", str(fraction), "--no-calibrate", "--out", out]
            subprocess.run([sys.executable, __file__, *argv], check=True, capture_output=True, text=True)
        with open(out) as lines:
            records = [json.loads(line) for line in lines if '"implementation"' in line]
        problems = [f"{r['implementation']} {r['precision']} (layers {r['layers']}): {r.get('status')}"
                    for r in records if r.get("status") != "ok"]
        for r in records:
            report = r.get("report", {})
            missing = {"tokens_per_s", "seconds_per_step_median", "peak_device_bytes", "predicted_peak_device_bytes", "backend"} - report.keys()
            if r.get("status") == "ok" and missing:
                problems.append(f"{r['implementation']}: report lacks {sorted(missing)}")
            elif r.get("status") == "ok" and report["peak_device_bytes"] != report["predicted_peak_device_bytes"]:
                problems.append(f"{r['implementation']} {r['precision']}: arena peak {report['peak_device_bytes']} ≠ predicted "
                                f"{report['predicted_peak_device_bytes']}")
        if len(records) != 12:
            problems.append(f"expected 12 runs (2 depths × (2 fp32 + 4 half)), got {len(records)}")
        subprocess.run([sys.executable, __file__, "report", out], check=True, capture_output=True, text=True)
        subprocess.run([sys.executable, __file__, "predict", "--zotune", args.zotune, "--shapes", "opt-125m,opt-175b"],
                       check=True, capture_output=True, text=True)
    if problems:
        raise SystemExit("zo2_compare check failed:\n" + "\n".join(problems))
    print(f"zo2_compare check: {len(records)} ZOTune runs on the CPU, reports complete, arena peaks equal the predictions")


# ---------------------------------------------------------------------------------------------


def workloads(text):
    pairs = []
    for item in text.split(","):
        batch, seq = item.lower().split("x")
        pairs.append((int(batch), int(seq)))
    return pairs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def selection(p):
        p.add_argument("--zotune", default=os.path.join(HERE, "..", ".build", "release", "zotune"))
        p.add_argument("--shapes", type=lambda t: t.split(","), default=SHAPES)
        p.add_argument("--workloads", type=workloads, default=[(1, 2048), (16, 128)], help="B×T pairs, e.g. 1x2048,16x128")
        p.add_argument("--precisions", type=lambda t: t.split(","), default=PRECISIONS)
        p.add_argument("--host-fraction", type=float, default=0.75, help="of host memory a model's host copy may take")
        p.add_argument("--max-truncated-layers", type=int, default=8, help="blocks of a truncated shape, at most")

    p = commands.add_parser("predict", help="the memory model's predictions for every row (Markdown)")
    selection(p)
    p.add_argument("--host-memory", type=size, default=size("128GiB"), help="the GPU machine's host memory")
    p.add_argument("--link-gbps", type=float, default=25.0, help="assumed GB/s each way for the link-bound column")
    p.add_argument("--fp32-tflops", type=float, default=50.0, help="assumed strict fp32 GEMM TFLOP/s (fp32 rows)")
    p.add_argument("--tf32-tflops", type=float, default=300.0, help="assumed TF32 GEMM TFLOP/s (half rows)")

    p = commands.add_parser("run", help="measure rows (JSON lines appended to --out)")
    selection(p)
    p.add_argument("--zo2", required=True, help="ZO2 checkout, outside this repository")
    p.add_argument("--zo2-pythonpath", help="PYTHONPATH for ZO2's children (a transformers 4.51.x)")
    p.add_argument("--zo2-half", choices=["fp16", "bf16"], default="fp16", help="ZO2's dtype in the 'half' rows")
    p.add_argument("--half-math", choices=["tf32", "fp32"], default="tf32", help="ZOTune's GEMMs in the 'half' rows")
    p.add_argument("--zo2-untied", action="store_true", help="ZO2 with an untied LM head, as its own benchmark (a different model)")
    p.add_argument("--implementations", type=lambda t: t.split(","), default=IMPLEMENTATIONS)
    p.add_argument("--steps", type=int, default=3, help="timed steps per run (after warm-up)")
    p.add_argument("--slots", type=int, default=2)
    p.add_argument("--row-timeout", type=int, default=300)
    p.add_argument("--deadline", type=float, default=480, help="seconds after which no run starts")
    p.add_argument("--done", nargs="*", default=[], help="earlier JSON lines: rows measured there are skipped")
    p.add_argument("--no-calibrate", action="store_true")
    p.add_argument("--out", required=True)

    commands.add_parser("calibrate", help="(child) link bandwidth and GEMM rates")
    p = commands.add_parser("check", help="the harness's ZOTune side on the CPU (a test)")
    p.add_argument("--zotune", default=os.path.join(HERE, "..", ".build", "release", "zotune"))
    p = commands.add_parser("report", help="the measured table from JSON lines (Markdown)")
    p.add_argument("files", nargs="+")

    args = parser.parse_args()
    for name in ("shapes", "precisions", "implementations"):
        allowed = {"shapes": SHAPES, "precisions": PRECISIONS, "implementations": IMPLEMENTATIONS}[name]
        bad = [v for v in getattr(args, name, []) if v not in allowed]
        if bad:
            parser.error(f"--{name} {','.join(bad)}: choose from {','.join(allowed)}")
    {"predict": predict, "run": run, "calibrate": calibrate, "report": report, "check": check}[args.command](args)


if __name__ == "__main__":
    main()
