#!/usr/bin/env python3
"""Generate one benchmark workload: a synthetic CAPS and a Conv5_FC3 MAPS built without training.

Run it with the Python of the ClinicaDL 1.6.1 virtual environment (it needs torch, numpy and
ClinicaDL's own network class):

    python bench/make_workload.py --kind image --n 40 --out target/bench/image
    python bench/make_workload.py --kind patch --n 8 --out target/bench/patch
    python bench/make_workload.py --kind small --n 400 --shape 32 40 32 --out target/bench/small

Everything is derived from --seed, so the same arguments give the same files. A finished workload
leaves OUT/workload.json with its arguments; a second call with the same arguments reuses it, other
arguments regenerate it from scratch.

What it writes under OUT:

    caps/subjects/<p>/ses-M000/deeplearning_prepare_data/image_based/t1_linear/
        <p>_ses-M000_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.pt
            float32 [1, X, Y, Z] with the column-major strides (X, 1, X, X*Y) that
            `clinicadl prepare-data` gives (torch.from_numpy(<Fortran array>).unsqueeze(0));
    caps/subjects/<p>/ses-M000/t1_linear/
        <p>_ses-M000_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.nii.gz
            (--kind image) the same voxels as a float32 NIfTI-1 image written by nibabel (gzip
            level 1, nibabel's default), from which the tensor above is exactly what
            `clinicadl prepare-data image` makes: the source of `clinicadl-rs --from_nifti`;
            the other kinds have no NIfTI (ClinicaDL and clinicadl-rs then find the .pt itself)
    caps/subjects/<p>/ses-M000/deeplearning_prepare_data/patch_based/t1_linear/
        <p>_ses-M000_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_patchsize-P_stride-S_patch-<q>_T1w.pt
            (--kind patch) contiguous [1, P, P, P] patches cut as prepare-data does (unfold); the
            image tensors are written too (ClinicaDL 1.6.1 reads the first one to count patches)
    caps/tensor_extraction/extract_<mode>.json
    tsv/test.tsv           the predict participants (participant_id, session_id, diagnosis, age, sex)
    tsv/split/             train.tsv, validation_baseline.tsv (the MAPS's training pool, no images)
    maps/maps.json         bench/maps.template.json (the maps.json that ClinicaDL 1.6.1 wrote for the
                           shared reference case image_classification, Conv4_FC3) with the
                           architecture, mode, input size, single split... of this workload
    maps/groups/           train+validation.tsv, train/split-0/, validation/split-0/
    maps/split-0/best-loss/model.pth.tar
                           {"model": Conv5_FC3(...).state_dict(), "epoch": 0, "name": "Conv5_FC3"}
                           built with ClinicaDL's class, weights from the seed; BatchNorm running
                           statistics calibrated on a few of the images then randomised, and the
                           last layer scaled so that the test images get varied probabilities and
                           both labels (the comparison then means something)
    maps/split-0/best-loss/validation/validation_patch_level_prediction.tsv
                           (--kind patch) plausible validation rows for every patch id, the weights
                           of ClinicaDL's soft voting
"""
import argparse
import json
import pathlib
import shutil
import sys
import time

import numpy as np
import torch

HERE = pathlib.Path(__file__).resolve().parent
SESSION = "ses-M000"
STEM = "space-MNI152NLin2009cSym_desc-Crop_res-1x1x1"
PATTERN = "*space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.nii.gz"
DESCRIPTION = (
    "T1w Image registered in MNI152NLin2009cSym space using t1-linear pipeline and cropped "
    "(matrix size 169\u00d7208\u00d7179, 1 mm isotropic voxels)"
)
LABEL_CODE = {"AD": 0, "CN": 1}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kind", choices=["image", "patch", "small"], required=True)
    p.add_argument("--out", type=pathlib.Path, required=True)
    p.add_argument("--n", type=int, required=True, help="number of test images")
    p.add_argument("--shape", type=int, nargs=3, default=[169, 208, 179], metavar=("X", "Y", "Z"))
    p.add_argument("--patch-size", type=int, default=50)
    p.add_argument("--stride", type=int, default=50)
    p.add_argument("--n-train", type=int, default=6, help="participants of the training pool")
    p.add_argument("--calibrate", type=int, default=4, help="images (x4 patches) used to calibrate the network")
    p.add_argument("--seed", type=int, default=20261127)
    return p.parse_args(argv)


def stamp_of(args):
    d = {k: (str(v) if isinstance(v, pathlib.Path) else v) for k, v in vars(args).items()}
    d.pop("out")
    d["generator"] = 2  # bump when the generated files change
    return d


# --------------------------------------------------------------------------------------------
# Participants


def participants(prefix, n, rng):
    diagnoses = np.array(["AD", "CN"] * ((n + 1) // 2))[:n]
    rng.shuffle(diagnoses)
    rows = []
    for i in range(n):
        rows.append(
            {
                "participant_id": f"sub-{prefix}{i + 1:04d}",
                "session_id": SESSION,
                "diagnosis": str(diagnoses[i]),
                "age": round(float(rng.uniform(60, 85)), 1),
                "sex": "MF"[int(rng.integers(2))],
            }
        )
    return rows


def write_tsv(path, rows, columns, index=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [("\t" if index else "") + "\t".join(columns)]
    for i, r in enumerate(rows):
        lines.append((f"{i}\t" if index else "") + "\t".join(str(r[c]) for c in columns))
    path.write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------------------------
# Images


def make_image(rng, shape, diagnosis):
    """A bright ellipsoid (smaller for AD) over a smooth background, plus noise; float32, Fortran order."""
    x, y, z = (np.linspace(-1, 1, s, dtype=np.float32) for s in shape)
    centre = rng.uniform(-0.1, 0.1, 3).astype(np.float32)
    radius = (0.45 if diagnosis == "CN" else 0.32) * rng.uniform(0.85, 1.15, 3).astype(np.float32)
    d2 = (
        ((x - centre[0]) / radius[0])[:, None, None] ** 2
        + ((y - centre[1]) / radius[1])[None, :, None] ** 2
        + ((z - centre[2]) / radius[2])[None, None, :] ** 2
    )
    img = np.exp(-d2 * d2, dtype=np.float32)
    img *= np.float32(rng.uniform(0.8, 1.2))
    img += np.float32(0.15) * (x[:, None, None] + np.float32(rng.uniform(-1, 1)) * y[None, :, None])
    img += np.float32(0.1) * rng.standard_normal(shape, dtype=np.float32)
    return np.asfortranarray(img)


def image_dir(caps, pid):
    return caps / "subjects" / pid / SESSION / "deeplearning_prepare_data" / "image_based" / "t1_linear"


def save_image(caps, pid, array):
    t = torch.from_numpy(array).unsqueeze(0)  # [1, X, Y, Z], strides (X, 1, X, X*Y), as prepare-data
    folder = image_dir(caps, pid)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{pid}_{SESSION}_{STEM}_T1w.pt"
    torch.save(t, path)
    return t


def save_nifti(caps, pid, array):
    """The CAPS t1-linear image the tensor comes from (float32, identity affine)."""
    import nibabel as nib

    folder = caps / "subjects" / pid / SESSION / "t1_linear"
    folder.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(array, np.eye(4))
    image.set_data_dtype(np.float32)
    nib.save(image, folder / f"{pid}_{SESSION}_{STEM}_T1w.nii.gz")


def cut_patches(image_tensor, p, s):
    """prepare_data_utils.extract_patches of ClinicaDL 1.6.1: [N, P, P, P] contiguous."""
    return (
        image_tensor.unfold(1, p, s).unfold(2, p, s).unfold(3, p, s).contiguous().view(-1, p, p, p)
    )


def save_patches(caps, pid, image_tensor, p, s):
    patches = cut_patches(image_tensor, p, s)
    folder = pathlib.Path(str(image_dir(caps, pid)).replace("image_based", "patch_based"))
    folder.mkdir(parents=True, exist_ok=True)
    for q in range(patches.shape[0]):
        name = f"{pid}_{SESSION}_{STEM}_patchsize-{p}_stride-{s}_patch-{q}_T1w.pt"
        torch.save(patches[q, ...].unsqueeze(0).clone(), folder / name)
    return patches


def minmax(t):
    return (t - t.min()) / (t.max() - t.min())


# --------------------------------------------------------------------------------------------
# Network


def make_network(input_size, calibration, seed):
    """ClinicaDL's Conv5_FC3 with seeded weights, BatchNorm statistics calibrated on `calibration`
    (normalised inputs) then randomised, and a last layer giving varied, balanced logits."""
    from clinicadl.utils.network.cnn.models import Conv5_FC3

    torch.manual_seed(seed)
    net = Conv5_FC3(input_size, gpu=False, output_size=2, dropout=0.0)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        bns = [m for m in net.modules() if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d))]
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the calibration batches
        net.train()
        for x in calibration:
            net(x.unsqueeze(0))
        net.eval()
        for bn in bns:
            c = bn.num_features
            bn.running_mean += 0.1 * bn.running_var.sqrt() * torch.randn(c, generator=g)
            bn.running_var *= 0.8 + 0.4 * torch.rand(c, generator=g)
            bn.weight.copy_(0.8 + 0.4 * torch.rand(c, generator=g))
            bn.bias.copy_(0.1 * torch.randn(c, generator=g))
            bn.num_batches_tracked.fill_(100)
            bn.momentum = 0.1
        logits = torch.cat([net(x.unsqueeze(0)) for x in calibration])
        last = net.fc[-1]
        diff = logits[:, 1] - logits[:, 0]
        spread = float(diff.std()) if len(calibration) > 1 else 0.0
        scale = 1.5 / spread if spread > 1e-6 else 1.0
        last.weight *= scale
        last.bias *= scale
        # centre the calibration images' mean logit difference on 0: both labels occur
        centre = float(diff.mean()) * scale
        last.bias[1] -= centre / 2
        last.bias[0] += centre / 2
    return net


# --------------------------------------------------------------------------------------------
# MAPS


def maps_json(args, caps, tsv_split, input_size, num_networks):
    d = json.loads((HERE / "maps.template.json").read_text())
    pre = {
        "preprocessing": "t1-linear",
        "mode": "patch" if args.kind == "patch" else "image",
        "use_uncropped_image": False,
        "prepare_dl": args.kind == "patch",
        "extract_json": "extract_patch.json" if args.kind == "patch" else "extract_image.json",
    }
    if args.kind == "patch":
        pre["patch_size"] = args.patch_size
        pre["stride_size"] = args.stride
    pre["file_type"] = {"pattern": PATTERN, "description": DESCRIPTION, "needed_pipeline": "t1-linear"}
    d.update(
        {
            "architecture": "Conv5_FC3",
            "selection_metrics": ["loss"],
            "n_proc": 2,
            "batch_size": 8,
            "seed": args.seed,
            "n_splits": 0,
            "epochs": 1,
            "caps_directory": str(caps),
            "tsv_path": str(tsv_split),
            "preprocessing_dict": pre,
            "mode": pre["mode"],
            "validation": "SingleSplit",
            "num_networks": num_networks,
            "output_size": 2,
            "input_size": list(input_size),
        }
    )
    return d


def write_group(maps, name, rows, caps):
    folder = maps / "groups" / name / "split-0"
    write_tsv(folder / "data.tsv", [dict(r, cohort="single") for r in rows],
              ["participant_id", "session_id", "cohort", "diagnosis"], index=True)
    (folder / "maps.json").write_text(
        json.dumps({"caps_directory": str(caps), "multi_cohort": False}, indent=4)
    )


def write_validation_patch_predictions(maps, rows, n_patches, rng):
    lines = ["participant_id\tsession_id\tpatch_id\ttrue_label\tpredicted_label\tproba0\tproba1"]
    accuracy = rng.uniform(0.3, 0.95, n_patches)
    for r in rows:
        truth = LABEL_CODE[r["diagnosis"]]
        for q in range(n_patches):
            predicted = truth if rng.random() < accuracy[q] else 1 - truth
            p = float(np.float32(rng.uniform(0.5, 1.0)))
            p0 = p if predicted == 0 else float(np.float32(1 - p))
            p1 = float(np.float32(1 - p0))
            lines.append(f"{r['participant_id']}\t{SESSION}\t{q}\t{truth}\t{predicted}\t{p0!r}\t{p1!r}")
    folder = maps / "split-0" / "best-loss" / "validation"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "validation_patch_level_prediction.tsv").write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------------------------


def main(argv):
    args = parse_args(argv)
    out = args.out.resolve()
    stamp = stamp_of(args)
    stamp_file = out / "workload.json"
    if stamp_file.exists() and json.loads(stamp_file.read_text()) == stamp:
        print(f"make_workload: reusing {out}", file=sys.stderr)
        return 0
    started = time.perf_counter()
    if out.exists():
        shutil.rmtree(out)
    caps, tsv, maps = out / "caps", out / "tsv", out / "maps"
    rng = np.random.default_rng(args.seed)

    test = participants("T", args.n, rng)
    pool = participants("S", args.n_train, rng)
    n_val = max(1, args.n_train // 3)
    train, validation = pool[n_val:], pool[:n_val]
    cols = ["participant_id", "session_id", "diagnosis", "age", "sex"]
    write_tsv(tsv / "test.tsv", test, cols)
    write_tsv(tsv / "split" / "train.tsv", train, cols)
    write_tsv(tsv / "split" / "validation_baseline.tsv", validation, cols)

    shape = tuple(args.shape)
    calibration = []
    n_patches = 1
    for i, r in enumerate(test):
        array = make_image(rng, shape, r["diagnosis"])
        t = save_image(caps, r["participant_id"], array)
        if args.kind == "image":
            save_nifti(caps, r["participant_id"], array)
        if args.kind == "patch":
            patches = save_patches(caps, r["participant_id"], t, args.patch_size, args.stride)
            n_patches = patches.shape[0]
            if i == 0:  # the first 4 x --calibrate patches of the first image
                calibration += [minmax(patches[q].unsqueeze(0)) for q in range(min(n_patches, 4 * args.calibrate))]
        elif i < args.calibrate:
            calibration.append(minmax(t))
        del array, t
    if args.kind == "patch":
        input_size = [1, args.patch_size, args.patch_size, args.patch_size]
    else:
        input_size = [1, *shape]

    extraction = {
        "preprocessing": "t1-linear",
        "mode": "patch" if args.kind == "patch" else "image",
        "use_uncropped_image": False,
        "prepare_dl": args.kind == "patch",
        "extract_json": "extract_patch.json" if args.kind == "patch" else "extract_image.json",
        "file_type": {"pattern": PATTERN, "description": DESCRIPTION, "needed_pipeline": "t1-linear"},
    }
    if args.kind == "patch":
        extraction.update(patch_size=args.patch_size, stride_size=args.stride)
    (caps / "tensor_extraction").mkdir(parents=True, exist_ok=True)
    (caps / "tensor_extraction" / f"extract_{extraction['mode']}.json").write_text(json.dumps(extraction))

    maps.mkdir(parents=True)
    d = maps_json(args, caps, tsv / "split", input_size, n_patches if args.kind == "patch" else 1)
    (maps / "maps.json").write_text(json.dumps(d, indent=4))
    import clinicadl

    (maps / "environment.txt").write_text(
        f"clinicadl=={clinicadl.__version__}\ntorch=={torch.__version__.split('+')[0]}\nnumpy=={np.__version__}\n"
    )
    write_tsv(maps / "groups" / "train+validation.tsv", pool, ["participant_id", "session_id"])
    write_group(maps, "train", train, caps)
    write_group(maps, "validation", validation, caps)

    net = make_network(input_size, calibration, args.seed)
    best = maps / "split-0" / "best-loss"
    best.mkdir(parents=True)
    torch.save({"model": net.state_dict(), "epoch": 0, "name": "Conv5_FC3"}, best / "model.pth.tar")
    if args.kind == "patch":
        write_validation_patch_predictions(maps, validation, n_patches, rng)

    stamp_file.write_text(json.dumps(stamp, indent=1))
    print(
        f"make_workload: {args.kind}: {args.n} images {list(shape)}"
        + (f", {n_patches} patches each" if args.kind == "patch" else "")
        + f" in {out} ({time.perf_counter() - started:.1f} s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
