#!/usr/bin/env python3
"""The two floors of a workload, measured with the ClinicaDL 1.6.1 virtual environment's PyTorch.

    python bench/floors.py --files FILES.txt --checkpoint model.pth.tar --input-size 1 X Y Z \
        [--batch-size 8] --out floors.json

- read floor: torch.load of every tensor file listed in FILES.txt (one path a line), in a loop,
  from the page cache (the files were just written or read; caches are not dropped);
- forward floor: ClinicaDL's own Conv5_FC3 built for --input-size, loaded from the checkpoint's
  `model` entry, in eval mode under torch.no_grad(), run over those tensors already in memory
  (MinMax-normalised and stacked into batches of --batch-size beforehand), with torch's
  default thread count. No warm-up pass: like a predict run, the first batch pays for oneDNN's
  set-up. Also: the CPU time of the forward passes, how far the process's peak RSS rose above
  its RSS just before them (the memory the forward passes themselves need: activations; None when
  the peak was reached earlier), and, for the model-load bound, the time of building the network
  (ClinicaDL's constructor runs the convolutions once on a zero input to size the first linear
  layer) and of torch.load + load_state_dict of the checkpoint; and a floor of any model load that
  copies the values: allocating and first touching as much fresh memory as the checkpoint holds
  (torch.zeros, torch's default thread count), measured first, before the process has memory to
  reuse.

Then the same forward passes in channels-last layout (weights and batches; oneDNN's fastest
exact kernels): forward_channels_last_s; and channels-last one element at a time (how clinicadl-rs
runs whole 3D images on the CPU): forward_channels_last_single_s. The faster of the two is the
floor of clinicadl-rs's forward: forward_fastest_s, forward_fastest_how.

Writes a JSON object: n, read_s, forward_s, forward_cpu_s, forward_channels_last_s,
forward_channels_last_single_s, forward_fastest_s, forward_fastest_how, forward_extra_peak_kb,
checkpoint_load_s, network_build_s, fresh_memory_s, fresh_memory_bytes, threads, torch.
"""
import argparse
import json
import resource
import pathlib
import sys
import time
import warnings

warnings.filterwarnings("ignore")

import torch  # noqa: E402


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--files", type=pathlib.Path, required=True)
    p.add_argument("--checkpoint", type=pathlib.Path, required=True)
    p.add_argument("--input-size", type=int, nargs="+", required=True)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--out", type=pathlib.Path, required=True)
    args = p.parse_args(argv)

    fresh_bytes = args.checkpoint.stat().st_size
    started = time.perf_counter()
    fresh = torch.zeros(fresh_bytes // 4)
    fresh_s = time.perf_counter() - started
    del fresh

    files = [line for line in args.files.read_text().splitlines() if line]
    started = time.perf_counter()
    tensors = [torch.load(f) for f in files]
    read_s = time.perf_counter() - started

    from clinicadl.utils.network.cnn.models import Conv5_FC3

    started = time.perf_counter()
    net = Conv5_FC3(args.input_size, gpu=False, output_size=2, dropout=0.0)
    built = time.perf_counter()
    net.load_state_dict(torch.load(args.checkpoint, map_location="cpu")["model"])
    net.eval()
    load_s = time.perf_counter() - built
    build_s = built - started
    batches = []
    for i in range(0, len(tensors), args.batch_size):
        chunk = [(t - t.min()) / (t.max() - t.min()) for t in tensors[i : i + args.batch_size]]
        batches.append(torch.stack(chunk))
        for j in range(i, min(i + args.batch_size, len(tensors))):
            tensors[j] = None
    rss_before = rss_kb()
    with torch.no_grad():
        started, cpu = time.perf_counter(), time.process_time()
        for batch in batches:
            net(batch)
        forward_s, forward_cpu_s = time.perf_counter() - started, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # The fastest exact layout libtorch offers on the CPU: channels-last weights and inputs
    # (oneDNN's blocked kernels), the same network and batches, after the contiguous pass.
    layout = torch.channels_last_3d if batches and batches[0].dim() == 5 else torch.channels_last
    net = net.to(memory_format=layout)
    with torch.no_grad():
        started = time.perf_counter()
        for batch in batches:
            net(batch.contiguous(memory_format=layout))
        forward_cl_s = time.perf_counter() - started
        # The same, one element at a time (as clinicadl-rs runs whole 3D images on the CPU):
        # smaller activations, but libtorch then sends small convolutions of a single element
        # to its slower unfold path.
        started = time.perf_counter()
        for batch in batches:
            for element in batch.split(1):
                net(element.contiguous(memory_format=layout))
        forward_cl_single_s = time.perf_counter() - started
    fastest = min(
        [("channels-last, batches of %d" % args.batch_size, forward_cl_s),
         ("channels-last, one element at a time", forward_cl_single_s)],
        key=lambda x: x[1],
    )
    result = {
        "n": len(files),
        "read_s": read_s,
        "forward_s": forward_s,
        "forward_cpu_s": forward_cpu_s,
        "forward_channels_last_s": forward_cl_s,
        "forward_channels_last_single_s": forward_cl_single_s,
        "forward_fastest_s": fastest[1],
        "forward_fastest_how": fastest[0],
        "forward_extra_peak_kb": max(0, peak - rss_before) if peak > rss_before else None,
        "checkpoint_load_s": load_s,
        "network_build_s": build_s,
        "fresh_memory_s": fresh_s,
        "fresh_memory_bytes": fresh_bytes,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
