"""The published pipeline, rebuilt in plain PyTorch, as the baseline of `cargo xtask bench reference`.

What the published code does per training step (docs/PROTOCOL.md §3–§4), written the way that code
is written: a map-style Dataset whose __getitem__ draws the overlay onto one image and makes its
views with per-image torchvision transforms on PIL images, a DataLoader in the main process
(num_workers=0), a torchvision ResNet-18 with the small-image stem (3×3 stride-1 conv1, no
max-pool) and a 512 → 128 linear head, the published SimCLR loss (t = 0.07), torch.optim.SGD
(lr 0.03, momentum 0.9, weight decay 1e-4) for the encoder and torch.optim.Adam (lr 1e-3) for the
viewmaker, which maximises the same loss. `alternating` is the published update order: an encoder
step on views made with the viewmaker's parameters frozen, then a fresh forward pass for the
viewmaker step with the encoder's parameters frozen (what PyTorch Lightning's optimizer toggling
does). fp32 throughout, unless --bf16 runs the forward passes under bf16 autocast.

--channels-last is the same pipeline as the best plain PyTorch a user could write it for speed:
the models' weights in the channels-last memory format (`model.to(memory_format=
torch.channels_last)`) and every image batch entering a model made channels-last
(`.contiguous(memory_format=torch.channels_last)`), PyTorch's own advice for convolutional
networks; the arithmetic is the same, only the memory layout differs.

Images are random 32×32 colour pictures with a 10×10 digit-like glyph pasted at one of the four
published places: the cost of a step does not depend on what the pixels show.

Prints one JSON line per configuration: {"config", "pairs_per_s", "steps", "batch", "threads",
"channels_last", "bf16", ...}; `--batch` shrinks a configuration's batch (the script's smoke test).
With --trace, the timed steps run under torch.profiler and its Chrome trace is saved, for the
per-op comparison of `cargo xtask bench reference --profile`.
"""

import argparse
import contextlib
import json
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from PIL import Image
from torch.profiler import ProfilerActivity, profile
from torchvision import transforms

MEAN, STD = (0.491, 0.482, 0.446), (0.247, 0.243, 0.261)

# name: (encoder arch, encoder width, viewmaker width multiplier or None for expert views, batch)
CONFIGS = {
    "paper-expert": ("resnet18", 64, None, 256),
    "paper-alternating": ("resnet18", 64, 1.0, 256),
    "small-expert": ("small", 16, None, 128),
    "small-alternating": ("small", 16, 0.25, 128),
}


def expert_transform():
    """The SimCLR recipe of §3.1, per image, as torchvision composes it."""
    return transforms.Compose([
        transforms.RandomResizedCrop(32, scale=(0.2, 1.0)),
        transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        transforms.RandomGrayscale(p=0.2),
        transforms.RandomApply([transforms.GaussianBlur(kernel_size=13, sigma=(0.1, 2.0))], p=0.5),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(MEAN, STD),
    ])


class OverlaidPhotos(torch.utils.data.Dataset):
    """Photos with a digit pasted per read (§2.1); two expert views, or the clean image."""

    def __init__(self, n, expert, seed=0):
        rng = np.random.default_rng(seed)
        self.photos = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        self.glyphs = (rng.random((64, 10, 10)) > 0.6) * rng.integers(128, 256, size=(64, 10, 10))
        self.expert = expert_transform() if expert else None
        self.to_tensor = transforms.ToTensor()
        self.rng = rng

    def __len__(self):
        return len(self.photos)

    def __getitem__(self, i):
        img = self.photos[i].copy()
        glyph = self.glyphs[self.rng.integers(len(self.glyphs))]
        y, x = [(4, 4), (16, 4), (4, 16), (16, 16)][self.rng.integers(4)]
        patch = img[y:y + 10, x:x + 10]
        patch[glyph > 0] = glyph[glyph > 0, None]
        pil = Image.fromarray(img)
        if self.expert is not None:
            return self.expert(pil), self.expert(pil)
        return self.to_tensor(pil)


def encoder(arch, width):
    if arch == "resnet18":
        net = torchvision.models.resnet18(num_classes=128)
    else:  # featdrop's CPU family: one BasicBlock per stage, `width` channels in the first stage.
        net = torchvision.models.resnet.ResNet(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1], num_classes=128)
        net.inplanes = width  # _make_layer grows it stage by stage
        for i, stage in enumerate(["layer1", "layer2", "layer3", "layer4"]):
            block = net._make_layer(torchvision.models.resnet.BasicBlock, width << i, 1, stride=1 if i == 0 else 2)
            setattr(net, stage, block)
        net.bn1 = nn.BatchNorm2d(width)
        net.fc = nn.Linear(width * 8, 128)
    net.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
    net.maxpool = nn.Identity()
    return net


class ConvIN(nn.Module):
    def __init__(self, cin, cout, k, stride=1, relu=True):
        super().__init__()
        self.pad = nn.ReflectionPad2d(k // 2)
        self.conv = nn.Conv2d(cin, cout, k, stride)
        self.norm = nn.InstanceNorm2d(cout, affine=True)
        self.relu = relu

    def forward(self, x):
        y = self.norm(self.conv(self.pad(x)))
        return F.relu(y) if self.relu else y


class ResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.a, self.b = ConvIN(c, c, 3), ConvIN(c, c, 3, relu=False)

    def forward(self, x):
        return x + self.b(self.a(x))


class Viewmaker(nn.Module):
    """§3.2: noise channel, 9×9/3×3/3×3 down path with IN, 3 residual blocks each with one more
    noise channel, nearest-upsampling up path, 9×9 out, tanh, mean |δ| rescaled to ε."""

    def __init__(self, width_mult=1.0, blocks=3, eps=0.05):
        super().__init__()
        w1, w2, w3 = [max(1, round(w * width_mult)) for w in (32, 64, 128)]
        self.down = nn.Sequential(ConvIN(4, w1, 9), ConvIN(w1, w2, 3, 2), ConvIN(w2, w3, 3, 2))
        self.blocks = nn.ModuleList([ResBlock(w3 + i) for i in range(1, blocks + 1)])
        self.up = nn.ModuleList([ConvIN(w3 + blocks, w2, 3), ConvIN(w2, w1, 3)])
        self.out = nn.Sequential(nn.ReflectionPad2d(4), nn.Conv2d(w1, 3, 9))
        self.eps = eps

    @staticmethod
    def noise(x):
        return torch.rand(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device)

    def forward(self, x):
        h = self.down(torch.cat([x, self.noise(x)], 1))
        for block in self.blocks:
            h = block(torch.cat([h, self.noise(h)], 1))
        for layer in self.up:
            h = layer(F.interpolate(h, scale_factor=2, mode="nearest"))
        delta = torch.tanh(self.out(h))
        delta = delta * (self.eps / (delta.abs().mean(dim=(1, 2, 3), keepdim=True) + 1e-4))
        return x + delta


def simclr_loss(z1, z2, t=0.07):
    """The published variant (§4): self-similarity kept among the 2N logits."""
    a, b = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    logits = torch.cat([a @ a.T, a @ b.T], 1) / t
    positive = (a * b).sum(1) / t
    return (torch.logsumexp(logits, 1) - positive - np.log(2 * a.shape[0])).mean()


def is_channels_last(module):
    """Whether every 4-d weight of `module` is in the channels-last memory format."""
    weights = [p for p in module.parameters() if p.dim() == 4]
    return bool(weights) and all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)


def run(name, steps, device, trace=None, channels_last=False, bf16=False, batch=None):
    arch, width, vm_width, config_batch = CONFIGS[name]
    batch = batch or config_batch
    torch.manual_seed(0)
    data = OverlaidPhotos(batch * (steps + 1), expert=vm_width is None)
    loader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True, num_workers=0, drop_last=True)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    enc = encoder(arch, width).to(device, memory_format=layout)
    sgd = torch.optim.SGD(enc.parameters(), lr=0.03, momentum=0.9, weight_decay=1e-4)
    vm = Viewmaker(vm_width).to(device, memory_format=layout) if vm_width is not None else None
    adam = torch.optim.Adam(vm.parameters(), lr=1e-3) if vm is not None else None
    normalize = transforms.Normalize(MEAN, STD)
    device_type = torch.device(device).type
    # bf16 autocast of the forward passes and the loss, as featdrop's train.bf16 does.
    autocast = (lambda: torch.autocast(device_type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext

    def to_model(images):
        return images.to(device).contiguous(memory_format=layout)

    def set_grad(module, on):
        for p in module.parameters():
            p.requires_grad_(on)

    def step(batch_data):
        if vm is None:
            v1, v2 = (to_model(v) for v in batch_data)
            with autocast():
                loss = simclr_loss(enc(v1), enc(v2))
            sgd.zero_grad()
            loss.backward()
            sgd.step()
            return
        x = to_model(batch_data)
        # Encoder step: the viewmaker's parameters frozen.
        set_grad(vm, False)
        with autocast():
            loss = simclr_loss(enc(normalize(vm(x))), enc(normalize(vm(x))))
        sgd.zero_grad()
        loss.backward()
        sgd.step()
        set_grad(vm, True)
        # Viewmaker step: a fresh forward pass, the encoder's parameters frozen, loss maximised.
        set_grad(enc, False)
        with autocast():
            vm_loss = -simclr_loss(enc(normalize(vm(x))), enc(normalize(vm(x))))
        adam.zero_grad()
        vm_loss.backward()
        adam.step()
        set_grad(enc, True)

    enc.train()
    it = iter(loader)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    step(next(it))  # warm-up: allocator, oneDNN/cuDNN kernel choice
    sync()
    profiler = contextlib.nullcontext()
    if trace is not None:  # the same (Kineto) profiler featdrop's bench drives through libtorch
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
        profiler = profile(activities=activities)
    with profiler as prof:
        start = time.perf_counter()
        for _ in range(steps):
            step(next(it))  # data loading and views are part of the step, as in the published loop
        sync()
        seconds = time.perf_counter() - start
    if trace is not None:
        prof.export_chrome_trace(trace)
    return {"impl": "pytorch", "config": name, "pairs_per_s": batch * steps / seconds, "steps": steps,
            "batch": batch, "seconds": seconds, "threads": torch.get_num_threads(), "device": device,
            "channels_last": channels_last, "bf16": bf16,
            "model_channels_last": is_channels_last(enc) and (vm is None or is_channels_last(vm)),
            "torch": torch.__version__, "torchvision": torchvision.__version__}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", action="append", choices=sorted(CONFIGS), help="repeatable; default: all")
    p.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step")
    p.add_argument("--device", default="cpu")
    p.add_argument("--trace", help="profile the timed steps and save a Chrome trace here (one --config)")
    p.add_argument("--channels-last", action="store_true", help="models and their inputs in channels-last")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast of the forward passes")
    p.add_argument("--batch", type=int, help="batch size instead of the configuration's (smoke tests)")
    args = p.parse_args()
    names = args.config or list(CONFIGS)
    if args.trace and len(names) != 1:
        p.error("--trace takes exactly one --config")
    if args.batch is not None and args.batch < 2:
        p.error(f"--batch {args.batch}: expected at least 2 (a contrastive batch needs negatives)")
    for name in names:
        record = run(name, args.steps, args.device, args.trace, args.channels_last, args.bf16, args.batch)
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
