#!/usr/bin/env python3
"""clinicadl-rs predict against ClinicaDL 1.6.1 predict, on one machine in one run.

Called by bench/run.sh, which builds the binary and prepares ClinicaDL's virtual environment;
see that script for the usage. This harness only needs the standard library: the workloads and the
floors are made by bench/make_workload.py and bench/floors.py, run with the ClinicaDL venv's Python.

For each workload (image: N full-size images; patch: pre-extracted 50^3 patches; small: many small
images), in its folder under the work directory:
  1. generate (or reuse) the CAPS and the MAPS;
  2. floors: read the tensor files with torch.load, and run ClinicaDL's Conv5_FC3 over them in memory;
  3. `clinicadl predict` then `clinicadl-rs -v predict`, same MAPS, data, options (`--no-gpu -sm loss
     --batch_size 8 -np 2`), each under /usr/bin/time -v (wall, max RSS) while a sampler sums the
     RSS and the PSS of the whole process tree every 0.1 s (ClinicaDL's DataLoader workers are
     processes; /usr/bin/time's max RSS is that of the largest single process);
  4. compare the prediction TSVs: same rows, same labels, probabilities within 1e-4 (and, as an
     extra check, the names and values rows of the metrics TSVs).
Then `clinicadl-rs --help` (median of 20 runs; `clinicadl predict --help` for comparison), runs of
clinicadl-rs on a single image (its `model loaded` line: the model load; wall minus forward: what
a one-image run costs besides the network) and, when strace is installed, the timestamps at which
such a run opens its files (start-up). Prints a Markdown report and writes it to WORK/results.md (WORK/quick/ with --quick),
with the raw figures in results.json. Exits 1 when the predictions differ.
"""
import argparse
import datetime
import json
import os
import pathlib
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time

HERE = pathlib.Path(__file__).resolve().parent
TOL = 1e-4
FULL = [169, 208, 179]
FORWARD_RE = re.compile(r"DEBUG: forward passes: ([0-9.]+) s for (\d+) elements")
MODEL_RE = re.compile(r"DEBUG: model loaded: ([0-9.]+) ms")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Measuring one command


def _children(pid_root):
    """Every descendant of pid_root (and itself), from /proc."""
    parent = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            parent[int(entry)] = int(stat[stat.rindex(")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            pass
    tree, frontier = {pid_root}, [pid_root]
    while frontier:
        p = frontier.pop()
        for child, par in parent.items():
            if par == p and child not in tree:
                tree.add(child)
                frontier.append(child)
    return tree


def _memory_kb(pid):
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


class TreeSampler(threading.Thread):
    """Peak over time of the summed RSS and PSS of a process tree, sampled every `period` s."""

    def __init__(self, pid, period=0.1):
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.peak_rss_kb = self.peak_pss_kb = 0
        self.max_procs = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            tree = _children(self.pid)
            tree.discard(self.pid)  # /usr/bin/time itself
            rss = pss = 0
            for p in tree:
                r, s = _memory_kb(p)
                rss, pss = rss + r, pss + s
            self.peak_rss_kb = max(self.peak_rss_kb, rss)
            self.peak_pss_kb = max(self.peak_pss_kb, pss)
            self.max_procs = max(self.max_procs, len(tree))
            self.stop.wait(self.period)


def parse_gnu_time(text):
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("Maximum resident set size (kbytes):"):
            out["max_rss_kb"] = int(line.rsplit(":", 1)[1])
        elif line.startswith("User time (seconds):"):
            out["user_s"] = float(line.rsplit(":", 1)[1])
        elif line.startswith("System time (seconds):"):
            out["sys_s"] = float(line.rsplit(":", 1)[1])
        elif line.startswith("Exit status:"):
            out["exit"] = int(line.rsplit(":", 1)[1])
    return out


def settle(folder, pause=3.0, timeout=120.0):
    """Waits until no process of an earlier run on `folder` is left (ClinicaDL's DataLoader workers
    outlive its main process while they tear down gigabytes), then `pause` seconds more, so that a
    run does not pay for the previous one's exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = subprocess.run(["pgrep", "-f", str(folder)], capture_output=True, text=True).stdout.split()
        if not [pid for pid in left if int(pid) != os.getpid()]:
            break
        time.sleep(0.5)
    time.sleep(pause)


def measure(cmd, cwd, log_path, env=None, sample=True):
    """Run cmd under /usr/bin/time -v; returns wall (perf_counter), GNU time figures, tree peaks."""
    time_file = log_path.with_suffix(".time")
    load_before = os.getloadavg()[0]
    with open(log_path, "w") as logf:
        logf.write("$ " + " ".join(map(str, cmd)) + "\n")
        logf.flush()
        started = time.perf_counter()
        proc = subprocess.Popen(
            ["/usr/bin/time", "-v", "-o", str(time_file), *map(str, cmd)],
            cwd=cwd, stdout=logf, stderr=subprocess.STDOUT, env=env,
        )
        sampler = TreeSampler(proc.pid) if sample else None
        if sampler:
            sampler.start()
        rc = proc.wait()
        wall = time.perf_counter() - started
        if sampler:
            sampler.stop.set()
            sampler.join()
    result = {"cmd": [str(c) for c in cmd], "rc": rc, "wall_s": wall, "log": str(log_path),
              "load_before": load_before, "load_after": os.getloadavg()[0]}
    result.update(parse_gnu_time(time_file.read_text()) if time_file.exists() else {})
    if sampler:
        result.update(tree_rss_kb=sampler.peak_rss_kb, tree_pss_kb=sampler.peak_pss_kb,
                      max_procs=sampler.max_procs)
    return result


# --------------------------------------------------------------------------------------------
# Outputs


def read_tsv(path):
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    return header, [dict(zip(header, line.split("\t"))) for line in lines[1:] if line]


def compare_tsv(expected, actual):
    """Rows in the same order with the same identifiers and labels, probabilities within TOL."""
    problems = []
    if not expected.exists() or not actual.exists():
        missing = [str(p) for p in (expected, actual) if not p.exists()]
        return {"ok": False, "rows": 0, "max_abs_diff": None, "problems": [f"missing {m}" for m in missing]}
    he, re_ = read_tsv(expected)
    ha, ra = read_tsv(actual)
    if he != ha:
        problems.append(f"headers differ: {he} vs {ha}")
    if len(re_) != len(ra):
        problems.append(f"{len(re_)} rows vs {len(ra)}")
    worst, label_mismatches, ties = 0.0, 0, 0
    for i, (e, a) in enumerate(zip(re_, ra)):
        for col in he:
            ve, va = e.get(col), a.get(col)
            if col.startswith("proba"):
                try:
                    d = abs(float(ve) - float(va))
                except (TypeError, ValueError):
                    problems.append(f"row {i} {col}: {ve!r} vs {va!r}")
                    continue
                worst = max(worst, d)
                if not d <= TOL:
                    problems.append(f"row {i} {col}: {ve} vs {va}")
            elif ve != va:
                if col == "predicted_label" and is_tie(e, TOL) and is_tie(a, TOL):
                    ties += 1  # both tools see a tie to float rounding: either label is right
                    continue
                if col == "predicted_label":
                    label_mismatches += 1
                problems.append(f"row {i} {col}: {ve!r} vs {va!r}")
    return {"ok": not problems, "rows": len(re_), "max_abs_diff": worst,
            "label_mismatches": label_mismatches, "ties": ties, "problems": problems[:10]}


def is_tie(row, tol):
    """Whether the two largest probabilities of a row differ by at most `tol`."""
    probas = sorted((float(v) for k, v in row.items() if k.startswith("proba")), reverse=True)
    return len(probas) >= 2 and probas[0] - probas[1] <= tol


def compare_metrics(expected, actual):
    """The deterministic part of two metrics TSVs: their first two lines (metric names and values;
    the bootstrap CI rows of ClinicaDL are unseeded), numbers within TOL."""
    if not expected.exists() or not actual.exists():
        return {"ok": False, "problems": ["missing " + str(p) for p in (expected, actual) if not p.exists()]}
    e = [line.split("\t") for line in expected.read_text().splitlines()[:2]]
    a = [line.split("\t") for line in actual.read_text().splitlines()[:2]]
    problems = []
    if [len(r) for r in e] != [len(r) for r in a]:
        return {"ok": False, "problems": [f"layouts differ: {e} vs {a}"]}
    for re_, ra in zip(e, a):
        for ce, ca in zip(re_, ra):
            if ce == ca:
                continue
            try:
                if abs(float(ce) - float(ca)) <= TOL:
                    continue
            except ValueError:
                pass
            problems.append(f"{ce!r} vs {ca!r}")
    return {"ok": not problems, "problems": problems[:10]}


def clean_group(maps, group):
    shutil.rmtree(maps / "groups" / group, ignore_errors=True)
    for d in maps.glob(f"split-*/best-*/{group}"):
        shutil.rmtree(d, ignore_errors=True)


def forward_seconds(log_path):
    total, elements, lines = 0.0, 0, 0
    for m in FORWARD_RE.finditer(pathlib.Path(log_path).read_text()):
        total += float(m.group(1))
        elements += int(m.group(2))
        lines += 1
    return (total, elements) if lines else (None, None)


# --------------------------------------------------------------------------------------------
# The machine


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=120).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info(args):
    model = ""
    for line in sh("lscpu").splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    mem_kb = 0
    for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    py = f"{args.clinicadl_venv}/bin/python"
    versions = sh(
        f"{py} -c \"import importlib.metadata as m; "
        f"print(' '.join(p + ' ' + m.version(p) for p in ['clinicadl', 'torch', 'scipy', 'numpy', 'pandas']))\""
    )
    return {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": sh(f"{py} -c 'import sys; print(sys.version.split()[0])'"),
        "clinicadl_env": versions,
        "clinicadl_rs": sh(f"{args.bin} --version"),
        "rustc": sh("rustc --version"),
        "git": sh(f"git -C {HERE} rev-parse --short HEAD") + (" (dirty)" if sh(f"git -C {HERE} status --porcelain") else ""),
        "load_start": os.getloadavg(),
    }


# --------------------------------------------------------------------------------------------
# Workloads


def workloads(args):
    small = args.small_shape
    return [
        {"name": "image", "kind": "image", "n": args.n, "shape": FULL,
         "what": f"{args.n} full-size images 1x{'x'.join(map(str, FULL))}, Conv5_FC3 3D"},
        {"name": "patch", "kind": "patch", "n": args.patch_images, "shape": FULL,
         "what": f"{args.patch_images} images x 36 pre-extracted patches 1x50x50x50, Conv5_FC3 3D, soft voting"},
        {"name": "small", "kind": "small", "n": args.small_images, "shape": small,
         "what": f"{args.small_images} small images 1x{'x'.join(map(str, small))}, Conv5_FC3 3D"},
    ]


def element_files(folder, kind):
    base = folder / "caps" / "subjects"
    sub = "patch_based" if kind == "patch" else "image_based"
    files = sorted(base.glob(f"*/*/deeplearning_prepare_data/{sub}/t1_linear/*.pt"))
    if kind == "patch":  # data.tsv order, then patch index
        files.sort(key=lambda p: (p.parts[-6], int(re.search(r"_patch-(\d+)_", p.name).group(1))))
    return files


def run_workload(w, args, py):
    folder = args.work / w["name"]
    log_dir = folder / "logs"
    gen = [py, HERE / "make_workload.py", "--kind", w["kind"], "--n", str(w["n"]), "--out", folder,
           "--shape", *map(str, w["shape"]), "--calibrate", str(args.calibrate)]
    log(f"{w['name']}: generating (or reusing) the workload in {folder}")
    started = time.perf_counter()
    subprocess.run(list(map(str, gen)), check=True)
    w["generate_s"] = time.perf_counter() - started
    log_dir.mkdir(exist_ok=True)
    maps, caps, tsv = folder / "maps", folder / "caps", folder / "tsv" / "test.tsv"
    input_size = json.loads((maps / "maps.json").read_text())["input_size"]
    files = element_files(folder, w["kind"])
    w["elements"] = len(files)
    (folder / "files.txt").write_text("\n".join(map(str, files)) + "\n")

    log(f"{w['name']}: floors (torch.load of {len(files)} files, forward pass in memory)")
    floors_out = log_dir / "floors.json"
    with open(log_dir / "floors.log", "w") as f:
        subprocess.run(
            list(map(str, [py, HERE / "floors.py", "--files", folder / "files.txt", "--checkpoint",
                           maps / "split-0" / "best-loss" / "model.pth.tar", "--input-size", *input_size,
                           "--batch-size", "8", "--out", floors_out])),
            check=True, stdout=f, stderr=subprocess.STDOUT,
            # glibc keeps freed memory, as clinicadl-rs has it do: large activations are not
            # faulted in again at every layer (the floor's fastest conditions).
            env={**os.environ, "MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**64 - 1)},
        )
    w["floors"] = json.loads(floors_out.read_text())

    common = ["--caps_directory", caps, "--participants_tsv", tsv, "--no-gpu", "-sm", "loss",
              "--batch_size", "8", "-np", "2"]
    # Both tools `args.repeats` times, interleaved (load drifts on a shared machine); the run with
    # the median wall time of each tool is reported, its log kept as clinicadl[-rs].log.
    # The image workload is also predicted from its NIfTI images (`--from_nifti`, "rs_nifti"),
    # interleaved with the same run from tensors: their ratio is the cost of reading NIfTI.
    # clinicadl-rs also runs with `-np 0` ("rs_np0": sessions read on the main thread, between
    # forward passes): its forward passes then have the cores to themselves, as the floors' do,
    # while with `-np 2` the reader threads take their share of the same cores.
    tools = ("cdl", "rs", "rs_np0", "rs_nifti") if w["kind"] == "image" else ("cdl", "rs", "rs_np0")
    names = {"cdl": "clinicadl", "rs": "clinicadl-rs", "rs_np0": "clinicadl-rs-np0",
             "rs_nifti": "clinicadl-rs-from-nifti"}
    runs = {tool: [] for tool in tools}
    for i in range(args.repeats):
        for tool in tools:
            group = f"bench_{tool}"
            clean_group(maps, group)
            name = names[tool]
            log_path = log_dir / f"{name}-{i}.log"
            log(f"{w['name']}: {name} predict ({i + 1}/{args.repeats})")
            settle(folder)
            cmd = ([args.clinicadl_venv / "bin" / "clinicadl", "predict"] if tool == "cdl"
                   else [args.bin, "-v", "predict"])
            extra = ["--from_nifti"] if tool == "rs_nifti" else []
            options = common[:-1] + ["0"] if tool == "rs_np0" else common
            r = measure([*cmd, maps, group, *options, *extra], folder, log_path)
            if tool != "cdl":
                r["forward_s"], r["forward_elements"] = forward_seconds(log_path)
            log(f"{w['name']}: {name} predict: {r['wall_s']:.1f} s, exit {r['rc']}")
            runs[tool].append(r)
    for tool in tools:
        ordered = sorted(runs[tool], key=lambda r: r["wall_s"])
        median = ordered[(len(ordered) - 1) // 2]
        median["runs_wall_s"] = [r["wall_s"] for r in runs[tool]]
        median["runs_forward_s"] = [r.get("forward_s") for r in runs[tool]]
        shutil.copyfile(median["log"], log_dir / f"{names[tool]}.log")
        w[tool] = median
    shares = [(r["wall_s"] - r["forward_s"]) / r["wall_s"] for r in runs["rs"]
              if r.get("forward_s") is not None and r["rc"] == 0]
    w["rs"]["outside_shares"] = shares

    mode = "patch" if w["kind"] == "patch" else "image"
    best = maps / "split-0" / "best-loss"
    w["compare"] = {}
    levels = ["patch", "image"] if mode == "patch" else ["image"]
    for level in levels:
        w["compare"][level] = compare_tsv(best / "bench_cdl" / f"bench_cdl_{level}_level_prediction.tsv",
                                          best / "bench_rs" / f"bench_rs_{level}_level_prediction.tsv")
    if "rs_nifti" in tools:
        # The same tensors, the same network: the same bytes.
        w["nifti_same_bytes"] = all(
            (best / "bench_rs" / f"bench_rs_{kind}.tsv").read_bytes()
            == (best / "bench_rs_nifti" / f"bench_rs_nifti_{kind}.tsv").read_bytes()
            for kind in ("image_level_prediction", "image_level_metrics"))
    w["metrics"] = {level: compare_metrics(best / "bench_cdl" / f"bench_cdl_{level}_level_metrics.tsv",
                                           best / "bench_rs" / f"bench_rs_{level}_level_metrics.tsv")
                    for level in levels}
    return w


def one_image_runs(w, args, repeats):
    """clinicadl-rs on a group of one image: wall minus the forward line, best of `repeats`."""
    folder = args.work / w["name"]
    maps, caps = folder / "maps", folder / "caps"
    lines = (folder / "tsv" / "test.tsv").read_text().splitlines()
    one = folder / "tsv" / "one.tsv"
    one.write_text(lines[0] + "\n" + lines[1] + "\n")
    runs = []
    for i in range(repeats):
        clean_group(maps, "bench_rs_one")
        log_path = folder / "logs" / f"clinicadl-rs-one-{i}.log"
        r = measure([args.bin, "-v", "predict", maps, "bench_rs_one", "--caps_directory", caps,
                     "--participants_tsv", one, "--no-gpu", "-sm", "loss", "--batch_size", "8", "-np", "2"],
                    folder, log_path, sample=False)
        r["forward_s"], _ = forward_seconds(log_path)
        loads = [float(m.group(1)) / 1000 for m in MODEL_RE.finditer(log_path.read_text())]
        r["model_load_s"] = loads[0] if loads else None
        runs.append(r)
    ok = [r for r in runs if r["rc"] == 0 and r["forward_s"] is not None]
    if not ok:
        return {"error": f"clinicadl-rs failed, see {runs[-1]['log']}"}
    best = min(ok, key=lambda r: r["wall_s"] - r["forward_s"])
    loads = sorted(r["model_load_s"] for r in ok if r["model_load_s"] is not None)
    return {"wall_s": best["wall_s"], "forward_s": best["forward_s"],
            "outside_s": best["wall_s"] - best["forward_s"], "repeats": len(ok),
            "max_rss_kb": best.get("max_rss_kb"),
            "model_load_s": loads, "model_load_median_s": statistics.median(loads) if loads else None}


STRACE_LINE = re.compile(r"^\d+\s+(\d\d):(\d\d):(\d\d\.\d+)\s+(.*)$")
SYSTEM_PREFIXES = ("/proc/", "/sys/", "/dev/", "/etc/", "/usr/", "/lib")


def file_events(trace):
    """(time, what, path) of execve, exit_group and the successful opens of non-library files."""
    events = []
    for line in trace.splitlines():
        m = STRACE_LINE.match(line)
        if not m:
            continue
        t = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
        rest = m.group(4)
        if rest.startswith("execve("):
            events.append((t, "execve", None))
        elif rest.startswith("exit_group("):
            events.append((t, "exit", None))
        elif rest.startswith("openat("):
            path = re.search(r'openat\(AT_FDCWD, "([^"]*)"', rest)
            if not path or "= -1" in rest:
                continue
            path = path.group(1)
            if path.startswith(SYSTEM_PREFIXES) or ".so" in path or "/site-packages/" in path:
                continue
            events.append((t, "open", path))
    return events


def strace_breakdown(w, args, repeats):
    """Start-up of a one-image clinicadl-rs run, from the timestamps at which it opens its files
    (strace -e openat): process start until it opens maps.json, and the whole run. Best of
    `repeats`."""
    strace = shutil.which("strace")
    if not strace:
        return {"error": "strace not found"}
    folder = args.work / w["name"]
    maps, caps, one = folder / "maps", folder / "caps", folder / "tsv" / "one.tsv"
    seccomp = subprocess.run([strace, "--seccomp-bpf", "-e", "trace=exit_group", "true"],
                             capture_output=True).returncode == 0
    runs = []
    for i in range(repeats):
        clean_group(maps, "bench_rs_strace")
        out = folder / "logs" / f"strace-{i}.txt"
        cmd = [strace, *(["--seccomp-bpf"] if seccomp else []), "-f", "-tt", "-e", "trace=openat,execve,exit_group",
               "-o", out, args.bin, "predict", maps, "bench_rs_strace", "--caps_directory", caps,
               "--participants_tsv", one, "--no-gpu", "-sm", "loss", "--batch_size", "8", "-np", "2"]
        rc = subprocess.run(list(map(str, cmd)), cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        if rc != 0 or not out.exists():
            continue
        ev = file_events(out.read_text())
        start = next((t for t, k, _ in ev if k == "execve"), None)
        cfg = next((t for t, k, p in ev if k == "open" and p.endswith("maps.json")), None)
        end = next((t for t, k, _ in ev if k == "exit"), None)
        if start is None or cfg is None:
            continue
        runs.append({"startup_s": cfg - start, "total_s": (end or ev[-1][0]) - start})
    if not runs:
        return {"error": "no usable strace run"}
    return {"startup_s": min(r["startup_s"] for r in runs),
            "total_s": min(r["total_s"] for r in runs), "repeats": len(runs), "seccomp_bpf": seccomp}


def help_times(cmd, runs):
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(list(map(str, cmd)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - started)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "runs": runs}


# --------------------------------------------------------------------------------------------
# Report


def fmt_s(x):
    return "n/a" if x is None else (f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s")


def fmt_mb(kb):
    return "n/a" if not kb else f"{kb / 1024:.0f} MB"


def ratio(a, b):
    return None if not a or not b else a / b


def fmt_r(x):
    return "n/a" if x is None else f"{x:.2f}x"


def cpu(m):
    return None if "user_s" not in m else m["user_s"] + m.get("sys_s", 0.0)


def verdict(ok):
    return "n/a" if ok is None else ("**met**" if ok else "**MISSED**")


def by_name(ws, name):
    return next((w for w in ws if w["name"] == name), {})


def report(info, ws, one, help_t, st, args):
    out = []
    add = out.append
    add("# clinicadl-rs vs ClinicaDL 1.6.1 `predict` — benchmark")
    add("")
    add(f"- date: {info['date']}{' — QUICK smoke-test sizes, not a benchmark' if args.quick else ''}")
    add(f"- machine: {info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB RAM, Linux {info['kernel']}; "
        f"load average at start {info['load_start'][0]:.2f} / {info['load_start'][1]:.2f} / {info['load_start'][2]:.2f} (1/5/15 min)")
    add(f"- clinicadl-rs: {info['clinicadl_rs']} (git {info['git']}), {info['rustc']}, release build, CPU")
    add(f"- ClinicaDL venv: python {info['python']}, {info['clinicadl_env']}")
    add("- both tools: `predict MAPS GROUP --caps_directory CAPS --participants_tsv TSV --no-gpu -sm loss "
        "--batch_size 8 -np 2` (clinicadl-rs with `-v`), " f"{args.repeats} runs each, interleaved, the run with the median wall time reported, page cache warm; torch's default thread count")
    add("")
    add("## Workloads")
    add("")
    add("| workload | what | elements |")
    add("|---|---|---|")
    for w in ws:
        add(f"| {w['name']} | {w['what']} | {w.get('elements', 'n/a')} |")
    add("")
    add("## Wall time and memory")
    add("")
    add("CPU: user + system time of the whole process tree (`/usr/bin/time`), less sensitive than wall time "
        "to other jobs on the machine. "
        "Peak RSS: `/usr/bin/time -v` maximum resident set size (the largest single process). Tree PSS: "
        "peak of the PSS summed over the whole process tree, sampled every 0.1 s (counts ClinicaDL's "
        "DataLoader worker processes, shared pages once).")
    add("")
    add("| workload | ClinicaDL wall | clinicadl-rs wall | ratio rs/ClinicaDL | ClinicaDL CPU | clinicadl-rs CPU | ClinicaDL peak RSS | clinicadl-rs peak RSS | ratio | ClinicaDL tree PSS | clinicadl-rs tree PSS | ratio | outputs |")
    add("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for w in ws:
        c, r = w.get("cdl", {}), w.get("rs", {})
        same = all(v["ok"] for v in w.get("compare", {}).values()) if w.get("compare") else None
        diffs = [v["max_abs_diff"] for v in w.get("compare", {}).values() if v["max_abs_diff"] is not None]
        outputs = "n/a" if same is None else (
            (f"same (max abs diff {max(diffs):.1e})" if diffs else "same") if same else "**DIFFERENT**")
        if c.get("rc") or r.get("rc"):
            outputs = f"exit codes {c.get('rc')}/{r.get('rc')}; " + outputs
        add(f"| {w['name']} | {fmt_s(c.get('wall_s'))} | {fmt_s(r.get('wall_s'))} | {fmt_r(ratio(r.get('wall_s'), c.get('wall_s')))} "
            f"| {fmt_s(cpu(c))} | {fmt_s(cpu(r))} "
            f"| {fmt_mb(c.get('max_rss_kb'))} | {fmt_mb(r.get('max_rss_kb'))} | {fmt_r(ratio(r.get('max_rss_kb'), c.get('max_rss_kb')))} "
            f"| {fmt_mb(c.get('tree_pss_kb'))} | {fmt_mb(r.get('tree_pss_kb'))} | {fmt_r(ratio(r.get('tree_pss_kb'), c.get('tree_pss_kb')))} | {outputs} |")
    add("")
    add("## Floors and clinicadl-rs's forward time")
    add("")
    add("Read floor: `torch.load` of the workload's tensor files in a loop (warm page cache). Forward floor: "
        "ClinicaDL's Conv5_FC3 in eval mode under `torch.no_grad()`, batches of 8 already in memory "
        "(PyTorch in the ClinicaDL venv, no warm-up), wall and CPU time; its extra memory: how far the "
        "floor process's peak RSS rose above its RSS just before the forward passes (about the memory "
        "the activations of one batch need). Channels-last: the same passes with the network and the batches "
        "in channels-last layout (`torch.channels_last_3d`, oneDNN's fastest exact kernels), right after, "
        "in batches of 8 and one element at a time (as clinicadl-rs runs whole 3D images on the CPU): the "
        "faster of the two is the fastest floor, the one clinicadl-rs's forward is measured against. The "
        "floors' process keeps freed memory (`MALLOC_MMAP_MAX_=0`, `MALLOC_TRIM_THRESHOLD_` raised), as "
        "clinicadl-rs's engine does. clinicadl-rs forward: the sum of its `DEBUG: forward passes` lines "
        "(device copies, network, loss, copy back), in the reported `-np 2` run, and in the run with the "
        "median wall time of the same runs with `-np 0` (sessions read on the main thread between forward passes: the "
        "forward passes have the cores to themselves, as the floors' do; with `-np 2` the reader "
        "threads take their share of the same cores).")
    add("")
    add("| workload | read floor | forward floor (CPU) | channels-last, batches of 8 | channels-last, one at a time | forward floor's extra memory | read + forward floors | clinicadl-rs forward | its ratio to the fastest floor | clinicadl-rs forward, `-np 0` | its ratio | clinicadl-rs wall | outside forward (share of wall) | ClinicaDL wall |")
    add("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for w in ws:
        f, r = w.get("floors", {}), w.get("rs", {})
        fwd, wall = r.get("forward_s"), r.get("wall_s")
        alone = w.get("rs_np0", {}).get("forward_s")
        outside = None if fwd is None or wall is None else (wall - fwd, (wall - fwd) / wall)
        add(f"| {w['name']} | {fmt_s(f.get('read_s'))} | {fmt_s(f.get('forward_s'))} ({fmt_s(f.get('forward_cpu_s'))}) | "
            f"{fmt_s(f.get('forward_channels_last_s'))} | {fmt_s(f.get('forward_channels_last_single_s'))} | "
            f"{fmt_mb(f.get('forward_extra_peak_kb'))} | "
            f"{fmt_s((f.get('read_s') or 0) + (f.get('forward_s') or 0)) if f else 'n/a'} | {fmt_s(fwd)} | "
            f"{fmt_r(ratio(fwd, f.get('forward_fastest_s')))} | {fmt_s(alone)} | "
            f"{fmt_r(ratio(alone, f.get('forward_fastest_s')))} | {fmt_s(wall)} | "
            f"{'n/a' if outside is None else f'{fmt_s(outside[0])} ({outside[1] * 100:.0f}%)'} | {fmt_s(w.get('cdl', {}).get('wall_s'))} |")
    add("")
    add("## Start-up and model load (clinicadl-rs)")
    add("")
    add(f"- `clinicadl-rs --help`: median {fmt_s(help_t['median_s'])} over {help_t['runs']} runs "
        f"(min {fmt_s(help_t['min_s'])}, max {fmt_s(help_t['max_s'])}); wall of the process, spawned from Python. "
        f"For comparison, ClinicaDL's start-up, `clinicadl predict --help`: median {fmt_s(help_t['clinicadl']['median_s'])} "
        f"over {help_t['clinicadl']['runs']} runs.")
    fl = by_name(ws, "image").get("floors", {})
    if "checkpoint_load_s" in fl:
        add(f"- model load in PyTorch (image workload, in the floors' process): building ClinicaDL's Conv5_FC3 "
            f"{fmt_s(fl['network_build_s'])} (its constructor runs the convolutions on a zero image to size "
            f"the first linear layer), `torch.load` + `load_state_dict` of the checkpoint {fmt_s(fl['checkpoint_load_s'])}.")
    if "fresh_memory_s" in fl:
        add(f"- floor of a model load that copies the values (image workload, in the floors' process, measured "
            f"first): allocating and first touching {fl['fresh_memory_bytes'] / 2**20:.0f} MB of fresh memory (the "
            f"checkpoint's size) with `torch.zeros` on {fl['threads']} threads: {fmt_s(fl['fresh_memory_s'])} "
            f"(clinicadl-rs maps the checkpoint instead of copying it).")
    for name, o in one.items():
        if "error" in o:
            add(f"- one-image run ({name} workload): {o['error']}")
            continue
        loads = o.get("model_load_s") or []
        add(f"- one-image run ({name} workload's MAPS, best of {o['repeats']}): wall {fmt_s(o['wall_s'])}, "
            f"forward {fmt_s(o['forward_s'])}, everything else {fmt_s(o['outside_s'])} "
            f"(process start and library loading, option/MAPS/CAPS checks, model load, reading one image, "
            f"writing the group and results); minus the `--help` median: {fmt_s(o['outside_s'] - help_t['median_s'])}. "
            f"Model load (`DEBUG: model loaded` line) over the {len(loads)} runs: "
            f"{', '.join(fmt_s(x) for x in loads) or 'n/a'} (median {fmt_s(o.get('model_load_median_s'))}).")
    if "error" in st:
        add(f"- file-open timestamps (strace): {st['error']}")
    else:
        add(f"- file-open timestamps of a one-image run (image workload, `strace"
            f"{' --seccomp-bpf' if st['seccomp_bpf'] else ''} -e openat`, best of {st['repeats']}): start-up until `maps.json` "
            f"is opened {fmt_s(st['startup_s'])}; whole run {fmt_s(st['total_s'])}.")
    add("")
    add("Model load: the `DEBUG: model loaded` line of clinicadl-rs, from opening the checkpoint to the network "
        "ready on its device (reading the pickle and the zip directory, mapping the file into memory, a view of "
        "each parameter, folding batch norms). The mapped values are read from the page cache as the first "
        "forward pass uses them: that time is in the forward time, and a one-image run's wall shows the whole. "
        "The up-front checks read the checkpoint's values through to check their CRC-32s, without keeping them "
        "(in the checks' time); the load does not read them again unless the file changed since.")
    add("")
    add("## Targets (reported, not enforced)")
    add("")
    add("| target | measured | |")
    add("|---|---|---|")
    by = {w["name"]: w for w in ws}

    def wall_ratio(name):
        w = by.get(name, {})
        return ratio(w.get("rs", {}).get("wall_s"), w.get("cdl", {}).get("wall_s"))

    def key_ratio(name, key):
        w = by.get(name, {})
        return ratio(w.get("rs", {}).get(key), w.get("cdl", {}).get(key))

    img = by.get("image", {})
    # The targets of issue #16 (speed II), with the earlier issues' that still hold.
    r = wall_ratio("image")
    add(f"| image: wall <= 0.25x ClinicaDL's | {fmt_r(r)} | {verdict(None if r is None else r <= 0.25)} |")
    r = key_ratio("image", "max_rss_kb")
    add(f"| image: peak RSS <= 0.2x ClinicaDL's (`/usr/bin/time` max RSS) | {fmt_r(r)} | {verdict(None if r is None else r <= 0.2)} |")
    r = key_ratio("image", "tree_pss_kb")
    add(f"| image: same, on the process tree's PSS | {fmt_r(r)} | {verdict(None if r is None else r <= 0.2)} |")
    for name, bound in (("patch", 0.15), ("small", 0.08)):
        r = wall_ratio(name)
        add(f"| {name}: wall <= {bound}x ClinicaDL's | {fmt_r(r)} | {verdict(None if r is None else r <= bound)} |")
    for w in ws:
        f = w.get("floors", {})
        r = ratio(w.get("rs_np0", {}).get("forward_s"), f.get("forward_fastest_s"))
        shared = ratio(w.get("rs", {}).get("forward_s"), f.get("forward_fastest_s"))
        add(f"| {w['name']}: clinicadl-rs forward within 10% of libtorch's fastest floor "
            f"({f.get('forward_fastest_how', 'n/a')}, {fmt_s(f.get('forward_fastest_s'))}), the cores to itself "
            f"as the floor has them (`-np 0`) | {fmt_r(r)} (with `-np 2`, reader threads on the same cores: "
            f"{fmt_r(shared)}) | {verdict(None if r is None else r <= 1.1)} |")
    rs = img.get("rs", {})
    if rs.get("outside_shares"):
        shares = rs["outside_shares"]
        share = statistics.median(shares)
        add(f"| image: clinicadl-rs time outside its forward passes <= 10% of its wall | {share * 100:.0f}% "
            f"(median of {len(shares)} runs: {', '.join(f'{x * 100:.0f}%' for x in shares)}) | {verdict(share <= 0.10)} |")
    else:
        add("| image: clinicadl-rs time outside its forward passes <= 10% of its wall | no forward line | n/a |")
    nifti = img.get("rs_nifti")
    if nifti:
        r = ratio(nifti.get("wall_s"), rs.get("wall_s"))
        same = "same bytes" if img.get("nifti_same_bytes") else "DIFFERENT outputs"
        add(f"| image from its NIfTI images (`--from_nifti`): wall <= 1.3x the same run from tensors | "
            f"{fmt_r(r)} ({fmt_s(nifti.get('wall_s'))} vs {fmt_s(rs.get('wall_s'))}; peak RSS "
            f"{fmt_mb(nifti.get('max_rss_kb'))} vs {fmt_mb(rs.get('max_rss_kb'))}; {same}) | "
            f"{verdict(None if r is None else r <= 1.3 and img.get('nifti_same_bytes'))} |")
    add(f"| `clinicadl-rs --help` < 50 ms | {fmt_s(help_t['median_s'])} (median) | {verdict(help_t['median_s'] < 0.05)} |")
    o = one.get("image", {})
    load = o.get("model_load_median_s")
    floor = fl.get("fresh_memory_s")
    if load is not None:
        add(f"| model load < 100 ms (Conv5_FC3, full size) | {fmt_s(load)} (median of {len(o['model_load_s'])} runs; "
            f"copying it into fresh memory would cost at least {fmt_s(floor)}) | {verdict(load < 0.1)} |")
    else:
        add("| model load < 100 ms (Conv5_FC3, full size) | no `model loaded` line | n/a |")
    for w in ws:
        for level, v in w.get("compare", {}).items():
            diff = "n/a" if v["max_abs_diff"] is None else f"{v['max_abs_diff']:.1e}"
            ties = (f" (and {v['ties']} ties to float rounding: in both outputs the two largest probabilities "
                    f"are within 1e-4 of each other, so either label is right)") if v.get("ties") else ""
            add(f"| {w['name']}: same {level}-level labels, probabilities within 1e-4 | "
                f"{v['rows']} rows, max abs diff {diff}, "
                f"{v.get('label_mismatches', 0)} label mismatches{ties} | {verdict(v['ok'])} |")
    for w in ws:
        for level, v in w.get("metrics", {}).items():
            tied = w.get("compare", {}).get(level, {}).get("ties")
            why = (f" (the {tied} tie(s) above give different labels, so label-based metrics differ)"
                   if tied and not v["ok"] else "")
            add(f"| {w['name']}: same {level}-level metrics (names and values rows, loss included), within 1e-4 "
                f"(extra check) | {'same' if v['ok'] else 'different'}{why} | {verdict(v['ok'])} |")
    add("")
    problems = [(w["name"], lvl, v["problems"]) for w in ws for lvl, v in w.get("compare", {}).items() if v["problems"]]
    problems += [(w["name"], lvl + " metrics", v["problems"]) for w in ws for lvl, v in w.get("metrics", {}).items() if v["problems"]]
    failures = [(w["name"], tool, w[tool]) for w in ws for tool in ("cdl", "rs", "rs_np0", "rs_nifti") if w.get(tool, {}).get("rc")]
    if problems or failures:
        add("## Problems")
        add("")
        for name, tool, m in failures:
            add(f"- {name}: {'ClinicaDL' if tool == 'cdl' else 'clinicadl-rs'}{' --from_nifti' if tool == 'rs_nifti' else ''}{' -np 0' if tool == 'rs_np0' else ''} exited with {m['rc']} (log `{m['log']}`)")
        for name, lvl, ps in problems:
            add(f"- {name} {lvl}-level differences (first ones): " + "; ".join(ps))
        add("")
    add("## Notes")
    add("")
    add(f"- load average at the end: {os.getloadavg()[0]:.2f}; per run (1-min load before/after): " + ", ".join(
        f"{w['name']} ClinicaDL {w['cdl']['load_before']:.1f}/{w['cdl']['load_after']:.1f}, clinicadl-rs {w['rs']['load_before']:.1f}/{w['rs']['load_after']:.1f}"
        for w in ws if "cdl" in w and "rs" in w))
    for w in ws:
        if "cdl" in w and "rs" in w:
            add(f"- {w['name']}: wall of every run (interleaved; the median one is reported above): ClinicaDL "
                f"{', '.join(fmt_s(x) for x in w['cdl'].get('runs_wall_s', []))}; clinicadl-rs "
                f"{', '.join(fmt_s(x) for x in w['rs'].get('runs_wall_s', []))}"
                + (f"; clinicadl-rs --from_nifti {', '.join(fmt_s(x) for x in w['rs_nifti'].get('runs_wall_s', []))}"
                   if "rs_nifti" in w else "")
                + (f"; clinicadl-rs -np 0 {', '.join(fmt_s(x) for x in w['rs_np0'].get('runs_wall_s', []))} "
                   f"(forward passes {', '.join(fmt_s(x) for x in w['rs_np0'].get('runs_forward_s', []))})"
                   if "rs_np0" in w else ""))
    add(f"- work folder: `{args.work}` (workloads, MAPS, logs of every run, `results.json`)")
    return "\n".join(out) + "\n"


def main(argv):
    p = argparse.ArgumentParser(description="clinicadl-rs vs ClinicaDL 1.6.1 predict")
    p.add_argument("--n", type=int, default=40, help="full-size images of the image workload")
    p.add_argument("--patch-images", type=int, default=8, help="images of the patch workload (36 patches each)")
    p.add_argument("--small-images", type=int, default=400)
    p.add_argument("--small-shape", type=int, nargs=3, default=[32, 40, 32])
    p.add_argument("--help-runs", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3, help="runs of each tool per workload (median reported)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of the script")
    p.add_argument("--work", type=pathlib.Path, required=True)
    p.add_argument("--bin", type=pathlib.Path, required=True)
    p.add_argument("--clinicadl-venv", type=pathlib.Path, required=True)
    args = p.parse_args(argv)
    args.calibrate, args.one_image_runs = 4, 5
    if args.quick:
        args.n, args.patch_images, args.small_images, args.help_runs = 2, 1, 16, 5
        args.calibrate, args.one_image_runs = 1, 1
    if args.quick:  # its own folder: the full-size workloads stay for the next full run
        args.work = args.work / "quick"
    args.work = args.work.resolve()
    args.bin = args.bin.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    py = args.clinicadl_venv / "bin" / "python"

    started = time.perf_counter()
    info = machine_info(args)
    ws = workloads(args)
    for w in ws:
        run_workload(w, args, py)
    log("clinicadl-rs --help and one-image runs")
    help_t = help_times([args.bin, "--help"], args.help_runs)
    help_t["clinicadl"] = help_times([args.clinicadl_venv / "bin" / "clinicadl", "predict", "--help"],
                                     1 if args.quick else 3)
    one = {name: one_image_runs(next(w for w in ws if w["name"] == name), args, args.one_image_runs) for name in ("image", "small")}
    st = strace_breakdown(by_name(ws, "image"), args, args.one_image_runs)
    text = report(info, ws, one, help_t, st, args)
    text += f"- benchmark duration: {(time.perf_counter() - started) / 60:.1f} min\n"
    (args.work / "results.md").write_text(text)
    (args.work / "results.json").write_text(json.dumps(
        {"info": info, "workloads": ws, "one_image": one, "help": help_t, "strace": st}, indent=1, default=str))
    print(text)
    log(f"written {args.work / 'results.md'}")
    bad = any(not v["ok"] for w in ws for v in w.get("compare", {}).values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
