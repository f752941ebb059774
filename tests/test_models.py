"""fastconv.models: the paper architectures build, have the paper's widths, and run (CPU, small inputs)."""
import pytest
import torch

from fastconv import models


def test_mobilenet_v1_structure_and_shape():
    m = models.mobilenet_v1(num_classes=10).eval()
    blocks = [b for b in m.modules() if isinstance(b, models.DepthwiseSeparable)]
    assert len(blocks) == 13
    assert [b.dw.stride[0] for b in blocks] == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
    assert blocks[-1].pw.out_channels == 1024 and m.last_channels == 1024
    # The paper's 1.0 MobileNet-224 has 4.2M parameters (with a 1000-way classifier).
    full = sum(p.numel() for p in models.mobilenet_v1().parameters())
    assert 4.1e6 < full < 4.3e6
    with torch.no_grad():
        assert m(torch.randn(2, 3, 64, 64)).shape == (2, 10)


@pytest.mark.parametrize("width_mult", [0.25, 0.5, 0.75])
def test_mobilenet_v1_width(width_mult):
    m = models.mobilenet_v1(width_mult, num_classes=5).eval()
    assert m.last_channels == int(1024 * width_mult)
    with torch.no_grad():
        assert m(torch.randn(1, 3, 32, 32)).shape == (1, 5)


@pytest.mark.parametrize("groups", [1, 2, 3, 4, 8])
def test_shufflenet_v1_paper_widths(groups):
    m = models.shufflenet_v1(groups, num_classes=7).eval()
    units = [u for u in m.modules() if isinstance(u, models.ShuffleV1Block)]
    assert len(units) == 4 + 8 + 4
    widths = models.SHUFFLENET_V1_CHANNELS[groups]
    for stage, want in zip((m.stage2, m.stage3, m.stage4), widths):
        first = stage[0]
        assert first.stride == 2
        assert first.gconv1.out_channels == want // 4
        assert first.gconv1.in_channels + first.gconv2.out_channels == want
        assert all(u.stride == 1 and u.gconv2.out_channels == want for u in list(stage)[1:])
    assert m.stage2[0].first_groups == 1 and m.stage2[0].gconv1.groups == 1
    assert m.stage3[0].first_groups == groups and m.stage3[0].gconv1.groups == groups
    with torch.no_grad():
        assert m(torch.randn(1, 3, 64, 64)).shape == (1, 7)


@pytest.mark.parametrize("groups,width_mult", [(3, 0.5), (8, 0.25), (2, 1.5)])
def test_shufflenet_v1_width(groups, width_mult):
    m = models.shufflenet_v1(groups, width_mult, num_classes=3).eval()
    for u in m.modules():
        if isinstance(u, models.ShuffleV1Block):
            assert u.gconv1.out_channels % groups == 0 and u.gconv2.out_channels % groups == 0
    with torch.no_grad():
        assert m(torch.randn(2, 3, 32, 32)).shape == (2, 3)


def test_shufflenet_v1_unit_semantics():
    """A stride-1 unit adds its input; a stride-2 unit concatenates avg-pooled input channels first."""
    torch.manual_seed(0)
    u = models.ShuffleV1Block(24, 24, 6, groups=3, stride=1).eval()
    x = torch.randn(1, 24, 8, 8)
    assert u(x).shape == x.shape
    u2 = models.ShuffleV1Block(24, 60, 15, groups=3, stride=2, first_groups=1).eval()
    y = u2(x.abs())
    assert y.shape == (1, 60, 4, 4)
    torch.testing.assert_close(y[:, :24], torch.nn.functional.avg_pool2d(x.abs(), 3, 2, 1))


def test_bad_arguments():
    with pytest.raises(ValueError, match="groups"):
        models.shufflenet_v1(groups=5)
    with pytest.raises(ValueError, match="width_mult"):
        models.mobilenet_v1(width_mult=0)
