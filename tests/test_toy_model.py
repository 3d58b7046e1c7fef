"""The built-in toy detector: its blur equals avg_pool2d's, its boxes are the blob's."""

import pytest
import torch
import torch.nn.functional as F

from cs_fast.models.toy import box_blur3, blob_detector, blob_image


@pytest.mark.parametrize("shape", [(7, 16, 16), (3, 5, 9), (2, 1, 4), (1, 3, 1)])
def test_blur_equals_avg_pool_without_padding_counts(shape):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    ref = F.avg_pool2d(x[:, None], 3, stride=1, padding=1, count_include_pad=False)[:, 0]
    assert torch.allclose(box_blur3(x), ref, rtol=0, atol=1e-6)


def test_boxes_of_blobs_and_no_blob():
    x = torch.stack([blob_image(), blob_image(top=8, left=2, height=3, width=4), torch.zeros(16, 16)])
    assert blob_detector(x).tolist() == [[5, 4, 12, 10], [2, 8, 6, 11], [0, 0, 0, 0]]
