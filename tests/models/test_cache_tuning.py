"""The streamed-inference chunk follows the CPU's L2 cache."""
import pytest

from morphmlp_mm.models import blocks


@pytest.mark.parametrize('text,expected', [('1024K', 1 << 20), ('2M', 2 << 20),
                                           ('512\n', 512), (' 48k ', 48 << 10)])
def test_parse_cache_size(text, expected):
    assert blocks.parse_cache_size(text) == expected


@pytest.mark.parametrize('l2,tokens', [
    (2 << 20, 8192),    # Xeon, 2 MiB per core: the measured best
    (1 << 20, 4096),    # EPYC (Zen 5), 1 MiB per core: the measured best
    (256 << 10, 2048),  # small L2: floor
    (32 << 20, 16384),  # cap
    (0, 8192),          # unknown
])
def test_stream_tokens_for_l2(l2, tokens):
    assert blocks.stream_tokens_for(l2) == tokens


def test_this_machine_setting_follows_its_cache():
    assert blocks.MorphBlock.stream_tokens == blocks.stream_tokens_for(
        blocks.l2_cache_bytes())
