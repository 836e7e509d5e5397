"""Per-op profile of one training step of the PyTorch pipeline (simclr_reference.py), to compare
with featdrop's phase profile (FEATDROP_BENCH_PROFILE=1 cargo bench -p featdrop-contrastive --bench
train): where the time goes, and the convolution kernels' own rate on this machine.

    python benches/reference/profile_reference.py --config paper-expert [--channels-last]
"""

import argparse
import json
import os
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(__file__))
import simclr_reference as ref  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="paper-expert", choices=sorted(ref.CONFIGS))
    p.add_argument("--channels-last", action="store_true", help="encoder and its inputs in channels-last")
    p.add_argument("--rows", type=int, default=15)
    args = p.parse_args()
    arch, width, vm_width, batch = ref.CONFIGS[args.config]
    assert vm_width is None, "profiles the expert step"
    torch.manual_seed(0)
    data = ref.OverlaidPhotos(batch * 2, expert=True)
    loader = iter(torch.utils.data.DataLoader(data, batch_size=batch, num_workers=0, drop_last=True))
    enc = ref.encoder(arch, width)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    enc = enc.to(memory_format=fmt)
    sgd = torch.optim.SGD(enc.parameters(), lr=0.03, momentum=0.9, weight_decay=1e-4)

    def step(views):
        v1, v2 = (v.contiguous(memory_format=fmt) for v in views)
        loss = ref.simclr_loss(enc(v1), enc(v2))
        sgd.zero_grad()
        loss.backward()
        sgd.step()

    step(next(loader))  # warm-up
    views_start = time.perf_counter()
    views = next(loader)
    views_s = time.perf_counter() - views_start
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        step(views)
        step_s = time.perf_counter() - start
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / 1e6
    conv = sum(e.self_cpu_time_total for e in events if "conv" in e.key or "mkldnn" in e.key) / 1e6
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.rows))
    gflop = 0.56 * 3 * 2 * batch if arch == "resnet18" else float("nan")
    print(json.dumps({"config": args.config, "channels_last": args.channels_last, "threads": torch.get_num_threads(),
                      "per_image_views_s": views_s, "step_s_without_views": step_s, "conv_ops_s": conv,
                      "conv_share": conv / total, "encoder_gflop_per_s": gflop / step_s,
                      "conv_kernel_gflop_per_s": gflop / conv, "load_avg": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
