import math
import os
import socket

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from llink.losses import (
    TeacherQueue,
    direction_loss,
    gather_no_grad,
    gather_with_grad,
    info_nce,
    log_norm_loss,
    temperature_at,
    usage_contrast,
)

E = math.e
EYE2 = torch.eye(2)


def test_info_nce_orthogonal_pair_by_hand():
    # logits = I / 1: each row is softmax over [1, 0] with the 1 correct.
    loss = info_nce(EYE2, EYE2.clone(), 1.0, hard_k=None)
    assert loss.item() == pytest.approx(math.log(1 + E**-1), abs=1e-6)
    # Scale of the inputs does not matter (cosine), one direction equals the mean here.
    loss = info_nce(3 * EYE2, 0.5 * EYE2, 1.0, symmetric=False)
    assert loss.item() == pytest.approx(math.log(1 + E**-1), abs=1e-6)


def test_info_nce_temperature_by_hand():
    loss = info_nce(EYE2, EYE2, 0.5)
    assert loss.item() == pytest.approx(math.log(1 + E**-2), abs=1e-6)


def test_false_negative_mask_in_batch():
    # Same id: the only negative is masked, each softmax has one finite logit -> loss 0.
    assert info_nce(EYE2, EYE2, 1.0, q_ids=torch.tensor([7, 7])).item() == pytest.approx(0.0, abs=1e-7)
    assert info_nce(EYE2, EYE2, 1.0, k_ids=torch.tensor([7, 7])).item() == pytest.approx(0.0, abs=1e-7)
    # Different ids: nothing masked.
    loss = info_nce(EYE2, EYE2, 1.0, q_ids=torch.tensor([1, 2]))
    assert loss.item() == pytest.approx(math.log(1 + E**-1), abs=1e-6)
    # Three pairs, pairs 0 and 2 duplicates: rows 0 and 2 lose one negative each, row 1 none.
    q = torch.eye(3)
    ids = torch.tensor([4, 5, 4])
    row_masked = -1 + math.log(E + 1)  # logits [1, 0] left
    row_full = -1 + math.log(E + 2)  # logits [1, 0, 0]
    expect = (2 * row_masked + row_full) / 3
    assert info_nce(q, q, 1.0, q_ids=ids).item() == pytest.approx(expect, abs=1e-6)


def test_queue_negatives_and_queue_false_negatives_by_hand():
    queue = torch.tensor([[-1.0, 0.0], [0.0, -1.0], [1.0, 0.0]])
    queue_ids = torch.tensor([5, 6, 0])
    ids = torch.tensor([0, 1])
    loss = info_nce(EYE2, EYE2, 1.0, queue=queue, queue_ids=queue_ids, q_ids=ids, hard_k=None)
    # q0=[1,0]: in-batch [1, 0]; queue [-1, 0, (1 masked: id 0 is its own pair)].
    ce0 = -1 + math.log(E + 1 + E**-1 + 1)
    # q1=[0,1]: in-batch [0, 1]; queue [0, -1, 0].
    ce1 = -1 + math.log(1 + E + 1 + E**-1 + 1)
    k2q = math.log(1 + E**-1)  # queue is not used in the k->q direction
    assert loss.item() == pytest.approx(0.5 * ((ce0 + ce1) / 2 + k2q), abs=1e-6)
    one_way = info_nce(EYE2, EYE2, 1.0, queue=queue, queue_ids=queue_ids, q_ids=ids, symmetric=False)
    assert one_way.item() == pytest.approx((ce0 + ce1) / 2, abs=1e-6)


def _brute_force_q2k(q, k, queue, hard_k, temperature):
    qn = F.normalize(q.double(), dim=-1).numpy()
    kn = F.normalize(k.double(), dim=-1).numpy()
    un = F.normalize(queue.double(), dim=-1).numpy()
    total = 0.0
    for i in range(len(qn)):
        inb = kn @ qn[i] / temperature
        qs = np.sort(un @ qn[i] / temperature)[::-1][:hard_k]
        logits = np.concatenate([inb, qs])
        m = logits.max()
        total += -(inb[i] - m - math.log(np.exp(logits - m).sum()))
    return total / len(qn)


def test_hard_negative_mining_is_per_query_top_k():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(6, 16, generator=g), torch.randn(6, 16, generator=g)
    queue = torch.randn(50, 16, generator=g)
    for hard_k in (1, 5, 49):
        got = info_nce(q, k, 0.3, queue=queue, hard_k=hard_k, symmetric=False).item()
        assert got == pytest.approx(_brute_force_q2k(q, k, queue, hard_k, 0.3), abs=1e-5)
    full = _brute_force_q2k(q, k, queue, 50, 0.3)
    for hard_k in (None, 50, 1000):  # no mining when the queue is not longer than hard_k
        assert info_nce(q, k, 0.3, queue=queue, hard_k=hard_k, symmetric=False).item() == pytest.approx(full, abs=1e-5)
    # Mining keeps the hardest, so dropping easy negatives can only lower the loss.
    assert _brute_force_q2k(q, k, queue, 5, 0.3) < full


def test_mining_skips_masked_queue_entries():
    # The queue's most similar entry is q0's own pair: masked, so top-1 must be the next one.
    queue = torch.tensor([[1.0, 0.0], [0.6, 0.8], [-1.0, 0.0]])
    loss = info_nce(EYE2[:1], EYE2[:1], 1.0, queue=queue, queue_ids=torch.tensor([3, 8, 9]),
                    k_ids=torch.tensor([3]), hard_k=1, symmetric=False)
    assert loss.item() == pytest.approx(-1 + math.log(E + E**0.6), abs=1e-6)


def test_info_nce_gradients_finite_and_stable():
    g = torch.Generator().manual_seed(1)
    q = torch.randn(8, 32, generator=g, requires_grad=True)
    k = torch.randn(8, 32, generator=g, requires_grad=True)
    queue = torch.randn(300, 32, generator=g)
    ids = torch.tensor([0, 1, 2, 2, 3, 4, 5, 5])
    queue_ids = torch.arange(300) % 7
    loss = info_nce(q * 100, k, 0.01, queue=queue, queue_ids=queue_ids, q_ids=ids, hard_k=16)
    assert torch.isfinite(loss)
    loss.backward()
    for t in (q, k):
        assert torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_teacher_queue_fifo_fp16_ids_and_resume():
    qu = TeacherQueue(size=4, normalize=False)
    assert len(qu) == 0 and qu.get()[0].shape[0] == 0
    v = torch.arange(12, dtype=torch.float32).reshape(6, 2) + 0.5  # exact in fp16
    qu.enqueue(v[:3], torch.tensor([0, 1, 2]))
    assert len(qu) == 3
    vecs, ids = qu.get()
    assert vecs.dtype == torch.float32 and qu.vectors.dtype == torch.float16
    assert ids.tolist() == [0, 1, 2] and torch.equal(vecs, v[:3])
    qu.enqueue(v[3:], torch.tensor([3, 4, 5]))  # wraps: slots 3, 0, 1
    vecs, ids = qu.get()
    assert len(qu) == 4 and ids.tolist() == [4, 5, 2, 3]
    assert torch.equal(vecs, v[[4, 5, 2, 3]])

    state = qu.state_dict()
    back = TeacherQueue(size=4, normalize=False)
    back.load_state_dict(state)
    assert len(back) == 4 and torch.equal(back.get()[0], vecs) and back.ptr == qu.ptr
    for x in (qu, back):
        x.enqueue(v[:1], torch.tensor([9]))
    assert torch.equal(back.get()[1], qu.get()[1]) and back.get()[1].tolist() == [4, 5, 9, 3]
    with pytest.raises(ValueError):
        TeacherQueue(size=8).load_state_dict(state)

    # A batch larger than the queue keeps its newest entries.
    big = TeacherQueue(size=4, normalize=False)
    big.enqueue(v, torch.arange(6))
    assert sorted(big.get()[1].tolist()) == [2, 3, 4, 5]


def test_teacher_queue_normalizes_by_default():
    qu = TeacherQueue(size=8)
    qu.enqueue(torch.tensor([[3e5, 4e5]]), [1])  # would overflow fp16 unnormalised
    vecs, _ = qu.get()
    assert torch.allclose(vecs, torch.tensor([[0.6, 0.8]]), atol=1e-3)


def test_direction_and_log_norm_losses():
    assert direction_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])).item() == pytest.approx(1.0)
    assert direction_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[3.0, 0.0]])).item() == pytest.approx(0.0, abs=1e-7)
    assert direction_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[-1.0, 0.0]])).item() == pytest.approx(2.0)
    pred = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    target = torch.tensor([[E, 0.0], [0.0, 2.0]])
    assert log_norm_loss(pred, target).item() == pytest.approx(0.5, abs=1e-6)  # (1^2 + 0^2) / 2


def test_usage_contrast_sign():
    # Slots lower the loss: no penalty. Slots do not help: penalty = the gap.
    assert usage_contrast(torch.tensor(1.0), torch.tensor(2.0)).item() == 0.0
    assert usage_contrast(torch.tensor(2.5), torch.tensor(1.0)).item() == pytest.approx(1.5)


def test_temperature_cosine_anneal():
    assert temperature_at(0, 100, 0.17, 0.08) == pytest.approx(0.17)
    assert temperature_at(50, 100, 0.17, 0.08) == pytest.approx(0.125)
    assert temperature_at(100, 100, 0.17, 0.08) == pytest.approx(0.08)
    assert temperature_at(500, 100, 0.17, 0.08) == pytest.approx(0.08)
    assert temperature_at(25, 100, 0.17, 0.08) > temperature_at(26, 100, 0.17, 0.08)


def test_gathers_are_identity_without_distributed():
    x = torch.randn(3, 2, requires_grad=True)
    assert gather_with_grad(x) is x
    assert torch.equal(gather_no_grad(x), x) and not gather_no_grad(x).requires_grad


def _gather_worker(rank, world_size, port):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        x = torch.full((2, 3), float(rank + 1), requires_grad=True)
        g = gather_with_grad(x)
        assert g.shape == (4, 3)
        assert torch.equal(g.detach(), torch.tensor([1.0] * 6 + [2.0] * 6).reshape(4, 3))  # rank order
        # Same loss on every rank; row r of the gathered batch has weight r + 1.
        w = torch.arange(1.0, 5.0).unsqueeze(1).expand(4, 3)
        (g * w).sum().backward()
        # Both ranks' losses reach this shard: 2 x its own rows' weights.
        expect = 2 * w[2 * rank : 2 * rank + 2]
        assert torch.equal(x.grad, expect), x.grad
        ng = gather_no_grad(x)
        assert torch.equal(ng, g.detach()) and not ng.requires_grad
        dist.barrier()  # no rank tears gloo down while the other is still talking to it
    finally:
        dist.destroy_process_group()


def test_gather_with_grad_two_process_gloo():
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_gather_worker, args=(2, port), nprocs=2, join=True)


def test_the_geometry_loss_is_zero_for_a_rotation_and_grows_with_distortion():
    from llink.losses import geometry_loss

    torch.manual_seed(0)
    x = torch.randn(12, 6)
    rot, _ = torch.linalg.qr(torch.randn(6, 6))
    # a rotated, scaled and shifted copy keeps every centred cosine
    assert float(geometry_loss(3.0 * x @ rot + 1.0, x)) < 1e-10
    pred = (x @ rot).requires_grad_(True)
    warped = pred * torch.tensor([5.0, 1, 1, 1, 1, 0.1])
    loss = geometry_loss(warped, x)
    assert float(loss.detach()) > 0.01
    loss.backward()
    assert pred.grad.abs().sum() > 0
    assert float(geometry_loss(x[:1], x[:1])) == 0.0
