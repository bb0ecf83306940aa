import pytest

from darkroom.engines.sizes import REFERENCE_SIZES, size_for
from tests.support.spec import SPEC_TABLE


def test_reference_sizes_are_the_spec_table():
    assert REFERENCE_SIZES == SPEC_TABLE


@pytest.mark.parametrize("ratio", SPEC_TABLE)
def test_a_512_model_keeps_ratios_at_its_area_in_multiples_of_64(ratio):
    width, height = size_for(ratio, 512)
    assert width % 64 == 0 and height % 64 == 0
    ref_w, ref_h = SPEC_TABLE[ratio]
    assert abs(width / height - ref_w / ref_h) < 0.2
    assert abs(width * height - ref_w * ref_h / 4) / (ref_w * ref_h / 4) < 0.15


def test_a_512_model_serves_square_as_512():
    assert size_for("1:1", 512) == (512, 512)
