# Run by tests/torch_interop.rs after the README's "Using the weights in PyTorch" snippet, which
# defines `model` (torchvision's resnet18 with the small-image stem, loaded strictly from
# encoder.safetensors). Compares it with featdrop's outputs on the same inputs, then writes a
# PyTorch-initialised model for featdrop to import. Prints one JSON line of max abs differences.
import json

import torch
import torchvision
from safetensors.torch import load_file, save_file


def trunk(m, x):
    """The last stage's output before pooling (what featdrop's linear probes see)."""
    for name in ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]:
        x = getattr(m, name)(x)
    return x


def diff(a, b):
    return (a - b).abs().max().item()


ref = load_file("featdrop_outputs.safetensors")
x = ref["inputs"]
out = {"embed_scale": ref["eval_embed"].abs().max().item()}
with torch.no_grad():
    model.eval()
    out["eval_embed"] = diff(model(x), ref["eval_embed"])
    out["eval_features"] = diff(trunk(model, x), ref["eval_features"])
    # Training mode: batch statistics, and the running statistics' momentum update.
    model.train()
    out["train_embed"] = diff(model(x), ref["train_embed"])
    out["running_mean"] = diff(model.bn1.running_mean, ref["bn1.running_mean"])
    out["running_var"] = diff(model.bn1.running_var, ref["bn1.running_var"])

# The other way: PyTorch's own initialisation, its running statistics moved by a few batches.
torch.manual_seed(0)
fresh = torchvision.models.resnet18(num_classes=128)
fresh.conv1, fresh.maxpool = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False), torch.nn.Identity()
with torch.no_grad():
    fresh.train()
    for _ in range(3):
        fresh(torch.randn(32, 3, 32, 32) * 0.5 + 0.1)
    fresh.eval()
    theirs = {"eval_features": trunk(fresh, x), "eval_embed": fresh(x)}
save_file({k: v.contiguous() for k, v in fresh.state_dict().items()}, "pytorch.safetensors")
save_file(theirs, "pytorch_outputs.safetensors")
print(json.dumps(out))
