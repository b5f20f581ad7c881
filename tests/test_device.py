import pytest
import torch

from fastattn_lib.device import cpu_generator, resolve_device


def test_auto_picks_cuda_exactly_when_available():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(None).type == expected


def test_explicit_cpu_and_torch_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("bad", ["gpu", "tpu", "cuda:x", 3])
def test_unknown_device_is_rejected_with_the_argument_named(bad):
    with pytest.raises(ValueError, match="device"):
        resolve_device(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a machine without CUDA")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="no CUDA device"):
        resolve_device("cuda")


def test_generator_is_reproducible_and_validates_seed():
    def draw(seed, stream):
        return torch.randn(4, generator=cpu_generator(seed, stream))

    assert torch.equal(draw(7, "data"), draw(7, "data"))
    assert not torch.equal(draw(7, "data"), draw(7, "hashes"))  # streams are independent
    for bad in (1.5, -1, 2**32):
        with pytest.raises(ValueError, match="seed"):
            cpu_generator(bad, "data")


def test_numba_kernels_follow_torchs_thread_count():
    import numba

    from fastattn_lib.device import match_numba_threads

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        match_numba_threads()
        assert numba.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    match_numba_threads()
    assert numba.get_num_threads() == min(before, numba.config.NUMBA_NUM_THREADS)
