"""A small convolutional encoder: the image front end of the captioner and the CTC recogniser.

Shape letters: ``N`` batch, ``C`` channels, ``H`` height, ``W`` width.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from rnnkit.checks import check_int


class ConvEncoder(nn.Module):
    """Blocks of ``Conv2d(3x3, same padding) -> BatchNorm2d -> ReLU -> MaxPool2d(pool)``.

    Args:
        in_channels: ``C_in`` of the images.
        channels: output channels of each block.
        pools: one ``(height, width)`` max-pooling window per block; ``(2, 1)`` halves the
            height and keeps every column (what a reader over columns needs).

    Shape:
        ``(N, C_in, H, W)`` -> ``(N, channels[-1], H', W')`` with ``H'`` (``W'``) the
        floor-division of ``H`` (``W``) by the product of the pools' heights (widths).

    Example:
        >>> encoder = ConvEncoder(1, (16, 32), ((2, 2), (2, 2)))
        >>> encoder(torch.zeros(5, 1, 16, 16)).shape
        torch.Size([5, 32, 4, 4])
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: Sequence[int] = (16, 32),
        pools: Sequence[tuple[int, int]] = ((2, 2), (2, 2)),
    ) -> None:
        super().__init__()
        check_int("in_channels", in_channels)
        channels = tuple(channels)
        pools = tuple(tuple(p) for p in pools)
        if not channels or len(pools) != len(channels):
            raise ValueError(
                f"pools: expected one (height, width) window per block ({len(channels)} "
                f"blocks), got {len(pools)}"
            )
        for k, c in enumerate(channels):
            check_int(f"channels[{k}]", c)
        for k, pool in enumerate(pools):
            if len(pool) != 2:
                raise ValueError(f"pools[{k}]: expected a (height, width) pair, got {pool!r}")
            check_int(f"pools[{k}][0]", pool[0])
            check_int(f"pools[{k}][1]", pool[1])
        self.in_channels, self.channels, self.pools = in_channels, channels, pools
        blocks = []
        for c_in, c_out, pool in zip((in_channels, *channels), channels, pools, strict=False):
            blocks += [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),  # BatchNorm has the bias
                nn.BatchNorm2d(c_out),
                nn.ReLU(),
                nn.MaxPool2d(pool),
            ]
        self.blocks = nn.Sequential(*blocks)

    def output_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """``(C_out, H', W')`` for images of ``height`` x ``width``; a ValueError if they are
        too small for the pools."""
        h, w = height, width
        for pool_h, pool_w in self.pools:
            h, w = h // pool_h, w // pool_w
        if h < 1 or w < 1:
            raise ValueError(
                f"images: {height}x{width} is too small for the pooling windows {self.pools}"
            )
        return self.channels[-1], h, w

    def forward(self, images: Tensor) -> Tensor:
        return self.blocks(images)  # (N, C_out, H', W')
