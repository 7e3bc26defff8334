import numpy as np
import pytest

from liverseg.data import preprocess as pp


def test_intensity_range_is_range_of_clipped_volume():
    hu = np.array([[[-1000, 0], [100, 3000]]], dtype=np.int16)
    assert pp.intensity_range(hu) == (-150.0, 250.0)
    hu2 = np.array([[[-20, 0], [100, 40]]], dtype=np.int16)
    assert pp.intensity_range(hu2) == (-20.0, 100.0)


def test_window_and_scale_exact_values():
    hu = np.array([-1000, -150, 50, 250, 1000], dtype=np.int16).reshape(1, 1, 5)
    out = pp.window_and_scale(hu)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.ravel(), [0.0, 0.0, 127.5, 255.0, 255.0])


def test_window_and_scale_uses_volume_range_not_window():
    hu = np.array([-50, 0, 150], dtype=np.float32).reshape(1, 1, 3)
    out = pp.window_and_scale(hu)
    np.testing.assert_allclose(out.ravel(), [0.0, 255 * 50 / 200, 255.0], rtol=1e-6)


def test_window_and_scale_slab_matches_whole_volume():
    rng = np.random.default_rng(3)
    hu = rng.integers(-1000, 1500, size=(8, 9, 10)).astype(np.int16)
    lo, hi = pp.intensity_range(hu)
    whole = pp.window_and_scale(hu)
    slab = pp.window_and_scale(hu[:, :, 4:7], lo, hi)
    np.testing.assert_array_equal(slab, whole[:, :, 4:7])


def test_constant_volume_maps_to_zero():
    out = pp.window_and_scale(np.full((2, 2, 3), 40, np.int16))
    np.testing.assert_array_equal(out, 0)


def test_triplets_count_and_channel_choice():
    assert pp.num_triplets(20) == 18
    np.testing.assert_array_equal(pp.triplet_indices(5), [0, 1, 2])
    assert pp.slice_channel(0, 5) == (0, 0)
    assert pp.slice_channel(1, 5) == (0, 1)
    assert pp.slice_channel(2, 5) == (1, 1)
    assert pp.slice_channel(3, 5) == (2, 1)
    assert pp.slice_channel(4, 5) == (2, 2)
    assert pp.slice_channel(0, 3) == (0, 0)
    assert pp.slice_channel(1, 3) == (0, 1)
    assert pp.slice_channel(2, 3) == (0, 2)
    with pytest.raises(ValueError):
        pp.slice_channel(0, 2)


def test_slice_stacks_lists_every_stack_holding_the_slice():
    assert pp.slice_stacks(0, 5) == [(0, 0)]
    assert pp.slice_stacks(1, 5) == [(0, 1), (1, 0)]
    assert pp.slice_stacks(2, 5) == [(0, 2), (1, 1), (2, 0)]
    assert pp.slice_stacks(3, 5) == [(1, 2), (2, 1)]
    assert pp.slice_stacks(4, 5) == [(2, 2)]
    assert pp.slice_stacks(1, 3) == [(0, 1)]
    # the original's choice is always one of them
    for n in (3, 4, 9):
        for k in range(n):
            assert pp.slice_channel(k, n) in pp.slice_stacks(k, n)
    with pytest.raises(IndexError):
        pp.slice_stacks(5, 5)
    with pytest.raises(ValueError):
        pp.slice_stacks(0, 2)


def test_min_liver_pixels_scales_with_area():
    assert pp.min_liver_pixels(512, 512) == 500
    assert pp.min_liver_pixels(256, 256) == 125
    assert pp.min_liver_pixels(64, 64) == pytest.approx(7.8125)


def test_roi_box_and_slice_rule():
    mask = np.zeros((64, 64, 4), np.uint8)
    mask[10:20, 30:41, 1] = 1  # 110 px
    mask[12:15, 5:8, 2] = 1  # 9 px
    mask[40, 50, 3] = 1  # 1 px
    box = pp.liver_roi_box(mask)
    assert box == pp.RoiBox(10, 40, 5, 50)
    np.testing.assert_array_equal(pp.roi_slice_mask(mask), [False, True, True, False])
    assert pp.liver_roi_box(np.zeros((4, 4, 2))) is None


def test_crop_variants_and_paste_back_round_trip():
    box = pp.RoiBox(2, 5, 1, 3)
    vol = np.arange(8 * 6 * 2).reshape(8, 6, 2)
    orig = pp.crop(vol, box, "original")
    paper = pp.crop(vol, box, "paper")
    assert orig.shape == (3, 2, 2)
    assert paper.shape == (4, 3, 2)
    np.testing.assert_array_equal(orig, vol[2:5, 1:3])
    back = pp.paste_back(paper, box, vol.shape, "paper")
    np.testing.assert_array_equal(back[2:6, 1:4], vol[2:6, 1:4])
    assert back.sum() == vol[2:6, 1:4].sum()
    with pytest.raises(ValueError):
        pp.paste_back(orig, box, vol.shape, "paper")
    with pytest.raises(ValueError):
        box.slices("bogus")


def test_binarise():
    np.testing.assert_array_equal(pp.binarise(np.array([0, 0.5, 0.51, 2])), [0, 0, 1, 1])


def test_window_and_scale_allocates_only_its_float32_output():
    import tracemalloc

    hu = np.random.default_rng(2).integers(-1024, 2000, (64, 64, 64)).astype(np.int16)
    tracemalloc.start()
    try:
        out = pp.window_and_scale(hu, -150.0, 250.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.dtype == np.float32
    # no float64 temporary (2x the output) on the way
    assert peak < 1.25 * out.nbytes
