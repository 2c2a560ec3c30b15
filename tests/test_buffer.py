import torch
import torch.multiprocessing as mp

from sharedgan.runtime.buffer import ALIGN, SlotBuffer, slot_fields


def fields():
    return slot_fields(batch_size=4, sample_shape=(2,), eval_samples=5)


def test_layout_is_declared_once_and_aligned():
    buf = SlotBuffer.allocate(fields(), num_slots=3, shared=False)
    for name, f in fields().items():
        view = getattr(buf, name)
        assert tuple(view.shape) == (3, *f.shape) and view.dtype == f.dtype
        offset = view.data_ptr() - buf.flat.data_ptr()
        assert offset % ALIGN == 0, name
    assert buf.sample_round.tolist() == [-1, -1, -1]  # no slot holds a round yet


def test_fields_do_not_overlap():
    buf = SlotBuffer.allocate(fields(), num_slots=2, shared=False)
    for name, view in buf.views.items():
        view.zero_()
    buf.d_grad.fill_(7.0)
    for name, view in buf.views.items():
        if name != "d_grad":
            assert not bool((view == 7).any()), name
    changed = (buf.flat != 0).nonzero().flatten()
    start = buf.d_grad.data_ptr() - buf.flat.data_ptr()
    assert len(changed) and int(changed.min()) >= start and int(changed.max()) < start + buf.d_grad.numel() * 4


def _child_writes(handle):
    buf = SlotBuffer.attach(handle)
    buf.sample[1].fill_(2.5)
    buf.gen_loss[1, 0] = 0.125
    buf.sample_round[1] = 42


def test_a_spawned_child_writes_into_the_parents_slots():
    buf = SlotBuffer.allocate(fields(), num_slots=2)
    assert buf.flat.is_shared()
    proc = mp.get_context("spawn").Process(target=_child_writes, args=(buf.handle(),))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0
    assert torch.all(buf.sample[1] == 2.5) and torch.all(buf.sample[0] == 0)
    assert float(buf.gen_loss[1, 0]) == 0.125 and int(buf.sample_round[1]) == 42


def test_attach_rejects_a_buffer_of_the_wrong_size():
    buf = SlotBuffer.allocate(fields(), num_slots=2, shared=False)
    try:
        SlotBuffer(fields(), 3, buf.flat)
    except ValueError as exc:
        assert "uint8 bytes" in str(exc)
    else:
        raise AssertionError("a 2-slot allocation was accepted as 3 slots")
