"""Batch norm over the global batch on CPUs: alone it is nn.BatchNorm; in 2 gloo processes it
gives the gradients and running statistics of one process holding the whole batch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file
from safetensors.torch import save_file
from torch import nn

from imgclf.models.compact import FastCNN
from imgclf.train.sync_batchnorm import GlobalBatchNorm, convert_global_batchnorm


def test_alone_it_is_batch_norm():
    torch.manual_seed(0)
    x = torch.randn(8, 5, 6, 6) * 3 + 1
    plain, glob = nn.BatchNorm2d(5), GlobalBatchNorm(5)
    glob.load_state_dict(plain.state_dict())
    torch.testing.assert_close(glob(x), plain(x))
    torch.testing.assert_close(glob.running_var, plain.running_var)
    glob.eval(), plain.eval()
    torch.testing.assert_close(glob(x), plain(x))


def test_conversion_keeps_the_parameters_buffers_and_what_is_frozen():
    model = FastCNN(10)
    before = dict(model.named_parameters())
    frozen = {n for n, p in before.items() if not p.requires_grad}
    keys = list(model.state_dict())
    model, converted, left = convert_global_batchnorm(model)
    assert converted == 6 and left == 0  # three blocks of two norms
    assert all(isinstance(m, GlobalBatchNorm) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
    after = dict(model.named_parameters())
    assert all(after[n] is p for n, p in before.items())  # an optimiser built before still updates them
    assert {n for n, p in after.items() if not p.requires_grad} == frozen  # the frozen-scale norms stay frozen
    assert list(model.state_dict()) == keys  # checkpoints and bundles read the same names


def test_a_norm_with_its_own_forward_is_left_alone():
    from timm.layers import BatchNormAct2d

    model = nn.Sequential(nn.Conv2d(3, 4, 3), BatchNormAct2d(4), nn.BatchNorm2d(4))
    model, converted, left = convert_global_batchnorm(model)
    assert (converted, left) == (1, 1)
    assert type(model[1]) is BatchNormAct2d  # converting it would drop its activation


def test_the_backward_all_reduce_carries_no_python_object_to_gloo(monkeypatch):
    """torch's backward keeps a Python object in thread-local state, which gloo copies into each
    collective's work; freed on a gloo thread at exit it killed a finished rank with SIGABRT."""
    import torch.distributed as dist

    from imgclf.train.sync_batchnorm import _SumOverRanks

    seen, after = [], []
    monkeypatch.setattr(dist, "all_reduce", lambda t, group=None: seen.append(torch._C._is_key_in_tls("context")))
    x = torch.ones(3, requires_grad=True)
    x.register_hook(lambda g: after.append(torch._C._is_key_in_tls("context")))
    _SumOverRanks.apply(x, None).sum().backward()
    assert seen == [False, False]  # forward, then backward: no Python context in either
    assert after == [True]  # and the backward's own context is back for the rest of the pass


SCRIPT = textwrap.dedent('''
    import sys, torch, torch.distributed as dist
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel
    from safetensors.torch import load_file, save_file
    from imgclf.launch import leave_process_group
    from imgclf.train.sync_batchnorm import convert_global_batchnorm

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    batch = load_file(sys.argv[1])
    x, y = batch["x"], batch["y"]
    model, _, _ = convert_global_batchnorm(model)
    ddp = DistributedDataParallel(model)
    nn.functional.cross_entropy(ddp(x.chunk(world)[rank]), y.chunk(world)[rank]).backward()
    if rank == 0:
        out = {"grad." + n: p.grad for n, p in model.named_parameters()}
        out.update({"buffer." + n: b.float() for n, b in model.named_buffers()})
        save_file(out, sys.argv[2])
    leave_process_group()  # as every imgclf worker does
''')


@pytest.mark.slow  # two processes start and import torch
def test_two_processes_match_one_process_with_the_whole_batch(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))  # fmt: skip
    x, y = torch.randn(16, 3, 8, 8) * 3 + 2, torch.randint(0, 4, (16,))
    nn.functional.cross_entropy(model(x), y).backward()
    save_file({"x": x, "y": y}, str(tmp_path / "batch.safetensors"))
    (tmp_path / "ddp.py").write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(tmp_path / "ddp.py"), str(tmp_path / "batch.safetensors"), str(tmp_path / "out.safetensors")]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = load_file(tmp_path / "out.safetensors")
    for name, p in model.named_parameters():
        np.testing.assert_allclose(got["grad." + name], p.grad.numpy(), rtol=1e-4, atol=1e-6, err_msg=name)
    for name, b in model.named_buffers():
        np.testing.assert_allclose(got["buffer." + name], b.float().numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
