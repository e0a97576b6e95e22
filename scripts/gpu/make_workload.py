#!/usr/bin/env python3
"""Synthetic workload for the GPU check: a CAPS of N full-size t1-linear image tensors and a
Conv5_FC3 classification MAPS with seeded random weights (no training, no ClinicaDL needed).

Usage: make_workload.py DEST [--n 64] [--shape 169 208 179] [--seed 0]

Needs only torch (and numpy). The checkpoint has exactly ClinicaDL's Conv5_FC3 state_dict keys
and shapes, BatchNorm running statistics randomised so that eval mode matters.
Image tensors are saved with NIfTI (column-major) strides, as `clinicadl prepare-data` does.
"""
import argparse
import json
import math
import pathlib

import torch


def conv5_fc3_state_dict(channels, spatial, n_classes, generator):
    sd = {}
    c_in = channels
    for b, c_out in enumerate([8, 16, 32, 64, 128]):
        k = [3] * len(spatial)
        sd[f"convolutions.{4 * b}.weight"] = torch.randn([c_out, c_in, *k], generator=generator) / math.sqrt(c_in * 27)
        sd[f"convolutions.{4 * b}.bias"] = torch.randn([c_out], generator=generator) * 0.1
        bn = f"convolutions.{4 * b + 1}"
        sd[f"{bn}.weight"] = 1 + 0.1 * torch.randn([c_out], generator=generator)
        sd[f"{bn}.bias"] = 0.1 * torch.randn([c_out], generator=generator)
        sd[f"{bn}.running_mean"] = 0.1 * torch.randn([c_out], generator=generator)
        sd[f"{bn}.running_var"] = 0.5 + torch.rand([c_out], generator=generator)
        sd[f"{bn}.num_batches_tracked"] = torch.tensor(10, dtype=torch.int64)
        c_in = c_out
    flat = 128
    for n in spatial:
        for _ in range(5):
            n = (n + 1) // 2
        flat *= n
    for name, (i, o) in {"fc.2": (flat, 1300), "fc.4": (1300, 50), "fc.6": (50, n_classes)}.items():
        sd[f"{name}.weight"] = torch.randn([o, i], generator=generator) / math.sqrt(i)
        sd[f"{name}.bias"] = torch.randn([o], generator=generator) * 0.1
    return sd


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dest")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--shape", type=int, nargs=3, default=[169, 208, 179])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    dest = pathlib.Path(args.dest).resolve()
    g = torch.Generator().manual_seed(args.seed)
    x, y, z = args.shape
    caps = dest / "caps"
    rows = []
    for i in range(args.n):
        p, s = f"sub-G{i:04d}", "ses-M000"
        folder = caps / "subjects" / p / s / "deeplearning_prepare_data" / "image_based" / "t1_linear"
        folder.mkdir(parents=True, exist_ok=True)
        image = torch.rand([z, y, x], generator=g).permute(2, 1, 0).unsqueeze(0)  # strides (X, 1, X, X*Y)
        torch.save(image, folder / f"{p}_{s}_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.pt")
        rows.append((p, s, "AD" if i % 2 == 0 else "CN"))
    (dest / "participants.tsv").write_text(
        "participant_id\tsession_id\tdiagnosis\n" + "".join(f"{p}\t{s}\t{d}\n" for p, s, d in rows)
    )
    maps = dest / "maps"
    best = maps / "split-0" / "best-loss"
    best.mkdir(parents=True, exist_ok=True)
    sd = conv5_fc3_state_dict(1, [x, y, z], 2, g)
    torch.save({"model": sd, "epoch": 0, "name": "Conv5_FC3"}, best / "model.pth.tar")
    (maps / "groups").mkdir(exist_ok=True)
    (maps / "groups" / "train+validation.tsv").write_text("participant_id\tsession_id\nsub-T0000\tses-M000\n")
    config = {
        "architecture": "Conv5_FC3", "multi_network": False, "dropout": 0.0, "label": "diagnosis",
        "label_code": {"AD": 0, "CN": 1}, "selection_threshold": 0.0, "loss": "CrossEntropyLoss",
        "network_task": "classification", "mode": "image", "diagnoses": ["AD", "CN"], "normalize": True,
        "size_reduction": False, "size_reduction_factor": 2, "num_networks": 1, "output_size": 2,
        "input_size": [1, x, y, z], "caps_directory": str(caps), "amp": False,
        "preprocessing_dict": {"preprocessing": "t1-linear", "mode": "image", "use_uncropped_image": False,
                               "prepare_dl": False,
                               "file_type": {"pattern": "*space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.nii.gz",
                                             "description": "T1w", "needed_pipeline": "t1-linear"}},
    }
    (maps / "maps.json").write_text(json.dumps(config, indent=4))
    print(dest)


if __name__ == "__main__":
    main()
