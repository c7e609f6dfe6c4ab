"""CPU feature detection: which precision a CPU training run uses by default."""

from embedops.cpu import cpu_features, parse_cpuinfo

ZEN4 = "processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16\n"
AVX2_ONLY = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx2 fma\n"
SAPPHIRE = "model name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: avx2 avx512f amx_bf16 amx_tile avx_vnni\n"


def test_bf16_is_offered_only_by_avx512_bf16_or_amx():
    assert parse_cpuinfo(ZEN4).bf16 and parse_cpuinfo(SAPPHIRE).bf16
    plain = parse_cpuinfo(AVX2_ONLY)
    assert not plain.bf16 and plain.avx2 and not plain.vnni
    assert parse_cpuinfo(SAPPHIRE).vnni and parse_cpuinfo(ZEN4).vnni


def test_the_cpu_is_named_with_what_it_offers():
    assert parse_cpuinfo(ZEN4).describe() == "AMD EPYC 9R14 (AVX2, AVX512, AVX512-BF16, VNNI)"
    assert parse_cpuinfo(AVX2_ONLY).describe() == "AMD EPYC 7B13 (AVX2)"


def test_this_machine_is_read_without_error():
    assert isinstance(cpu_features().bf16, bool) and cpu_features().describe()

