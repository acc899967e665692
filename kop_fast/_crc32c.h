/*
 * CRC32C (Castagnoli) for kop_fast._codec.
 *
 * Two implementations behind one entry point, chosen once at run time:
 *
 *  - hardware: the SSE4.2 `crc32` instruction (x86-64).  The instruction has a
 *    latency of 3 cycles but a throughput of one per cycle, so long buffers are
 *    cut into three equal streams that are checksummed in an interleaved loop
 *    and then combined.  Combining needs "advance a CRC register over n zero
 *    bytes", which is linear over GF(2); for the two fixed stream lengths used
 *    here it is precomputed as four 256-entry tables (one per register byte),
 *    so no carry-less multiply (PCLMUL) is needed.
 *  - software: slicing-by-8 tables, portable C.
 *
 * Only the hardware function is compiled for SSE4.2 (a target attribute), so
 * the extension still loads on CPUs without it; __builtin_cpu_supports picks.
 *
 * All functions work on the raw register: callers pass ~crc and invert the
 * result, which is what makes crc32c(b, crc32c(a)) == crc32c(a + b).
 */
#ifndef KOP_FAST_CRC32C_H
#define KOP_FAST_CRC32C_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define KOP_CRC32C_HAVE_HW 1
#include <nmmintrin.h>
#else
#define KOP_CRC32C_HAVE_HW 0
#endif

/* bit-reflected 0x1EDC6F41: bit 31 holds the x^0 coefficient */
#define KOP_CRC32C_POLY 0x82F63B78u

/* bytes per stream in the three-way loops; the combine cost (8 table
 * lookups) is paid once per 3 * stream bytes */
#define KOP_CRC32C_LONG 4096
#define KOP_CRC32C_SHORT 256

static uint32_t kop_crc32c_table[8][256];
static uint32_t kop_crc32c_long_shift[4][256];
static uint32_t kop_crc32c_short_shift[4][256];
static int kop_crc32c_use_hw = 0;
static int kop_crc32c_ready = 0;

/* a(x) * b(x) mod P(x) in the reflected representation */
static uint32_t kop_crc32c_mulmod(uint32_t a, uint32_t b)
{
    uint32_t product = 0;
    int i;
    for (i = 0; i < 32; i++) {
        if (a & (0x80000000u >> i))
            product ^= b;
        b = (b & 1) ? (b >> 1) ^ KOP_CRC32C_POLY : b >> 1; /* b *= x */
    }
    return product;
}

/* x^(8 * nbytes) mod P(x): the factor that advances a register over nbytes
 * zero bytes */
static uint32_t kop_crc32c_zeros_factor(size_t nbytes)
{
    uint32_t result = 0x80000000u;     /* x^0 */
    uint32_t square = 0x80000000u >> 8; /* x^8: one zero byte */
    while (nbytes) {
        if (nbytes & 1)
            result = kop_crc32c_mulmod(result, square);
        square = kop_crc32c_mulmod(square, square);
        nbytes >>= 1;
    }
    return result;
}

static void kop_crc32c_fill_shift(uint32_t table[4][256], size_t nbytes)
{
    uint32_t factor = kop_crc32c_zeros_factor(nbytes);
    int k, b;
    for (k = 0; k < 4; k++)
        for (b = 0; b < 256; b++)
            table[k][b] = kop_crc32c_mulmod((uint32_t)b << (8 * k), factor);
}

static inline uint32_t kop_crc32c_shift(const uint32_t table[4][256], uint32_t crc)
{
    return table[0][crc & 0xff] ^ table[1][(crc >> 8) & 0xff] ^
           table[2][(crc >> 16) & 0xff] ^ table[3][crc >> 24];
}

/* host-order 8-byte load (the crc32 instruction consumes little-endian
 * words, and it only exists on little-endian x86) */
static inline uint64_t kop_crc32c_load64(const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof w);
    return w;
}

static inline uint64_t kop_crc32c_load64le(const unsigned char *p)
{
    /* byte loads: portable for any alignment and byte order; compilers fuse
     * them into one load on little-endian targets */
    return (uint64_t)p[0] | ((uint64_t)p[1] << 8) | ((uint64_t)p[2] << 16) |
           ((uint64_t)p[3] << 24) | ((uint64_t)p[4] << 32) | ((uint64_t)p[5] << 40) |
           ((uint64_t)p[6] << 48) | ((uint64_t)p[7] << 56);
}

static uint32_t kop_crc32c_sw(uint32_t crc, const unsigned char *p, size_t n)
{
    const uint32_t (*t)[256] = (const uint32_t (*)[256])kop_crc32c_table;
    while (n && ((uintptr_t)p & 7)) {
        crc = t[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        n--;
    }
    while (n >= 8) {
        uint64_t w = kop_crc32c_load64le(p) ^ crc;
        crc = t[7][w & 0xff] ^ t[6][(w >> 8) & 0xff] ^ t[5][(w >> 16) & 0xff] ^
              t[4][(w >> 24) & 0xff] ^ t[3][(w >> 32) & 0xff] ^ t[2][(w >> 40) & 0xff] ^
              t[1][(w >> 48) & 0xff] ^ t[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n--)
        crc = t[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

#if KOP_CRC32C_HAVE_HW
__attribute__((target("sse4.2"))) static uint32_t
kop_crc32c_hw(uint32_t crc, const unsigned char *p, size_t n)
{
    uint64_t c0 = crc;
    while (n && ((uintptr_t)p & 7)) {
        c0 = _mm_crc32_u8((uint32_t)c0, *p++);
        n--;
    }
    /* three streams of LONG bytes: register(A B C) =
     *   shift_L(shift_L(reg(A)) ^ reg0(B)) ^ reg0(C) */
    while (n >= 3 * KOP_CRC32C_LONG) {
        uint64_t c1 = 0, c2 = 0;
        const unsigned char *end = p + KOP_CRC32C_LONG;
        do {
            c0 = _mm_crc32_u64(c0, kop_crc32c_load64(p));
            c1 = _mm_crc32_u64(c1, kop_crc32c_load64(p + KOP_CRC32C_LONG));
            c2 = _mm_crc32_u64(c2, kop_crc32c_load64(p + 2 * KOP_CRC32C_LONG));
            p += 8;
        } while (p < end);
        c0 = kop_crc32c_shift(kop_crc32c_long_shift,
                              kop_crc32c_shift(kop_crc32c_long_shift, (uint32_t)c0) ^
                                  (uint32_t)c1) ^
             (uint32_t)c2;
        p += 2 * KOP_CRC32C_LONG;
        n -= 3 * KOP_CRC32C_LONG;
    }
    while (n >= 3 * KOP_CRC32C_SHORT) {
        uint64_t c1 = 0, c2 = 0;
        const unsigned char *end = p + KOP_CRC32C_SHORT;
        do {
            c0 = _mm_crc32_u64(c0, kop_crc32c_load64(p));
            c1 = _mm_crc32_u64(c1, kop_crc32c_load64(p + KOP_CRC32C_SHORT));
            c2 = _mm_crc32_u64(c2, kop_crc32c_load64(p + 2 * KOP_CRC32C_SHORT));
            p += 8;
        } while (p < end);
        c0 = kop_crc32c_shift(kop_crc32c_short_shift,
                              kop_crc32c_shift(kop_crc32c_short_shift, (uint32_t)c0) ^
                                  (uint32_t)c1) ^
             (uint32_t)c2;
        p += 2 * KOP_CRC32C_SHORT;
        n -= 3 * KOP_CRC32C_SHORT;
    }
    while (n >= 8) {
        c0 = _mm_crc32_u64(c0, kop_crc32c_load64(p));
        p += 8;
        n -= 8;
    }
    while (n--)
        c0 = _mm_crc32_u8((uint32_t)c0, *p++);
    return (uint32_t)c0;
}
#endif

/* Build the tables and pick the implementation; force_software keeps the
 * table-driven code even on SSE4.2 CPUs (for tests and comparisons). */
static void kop_crc32c_init(int force_software)
{
    uint32_t crc;
    int b, k, i;
    if (!kop_crc32c_ready) {
        for (b = 0; b < 256; b++) {
            crc = (uint32_t)b;
            for (i = 0; i < 8; i++)
                crc = (crc & 1) ? (crc >> 1) ^ KOP_CRC32C_POLY : crc >> 1;
            kop_crc32c_table[0][b] = crc;
        }
        for (b = 0; b < 256; b++) {
            crc = kop_crc32c_table[0][b];
            for (k = 1; k < 8; k++) {
                crc = kop_crc32c_table[0][crc & 0xff] ^ (crc >> 8);
                kop_crc32c_table[k][b] = crc;
            }
        }
        kop_crc32c_fill_shift(kop_crc32c_long_shift, KOP_CRC32C_LONG);
        kop_crc32c_fill_shift(kop_crc32c_short_shift, KOP_CRC32C_SHORT);
        kop_crc32c_ready = 1;
    }
#if KOP_CRC32C_HAVE_HW
    __builtin_cpu_init();
    kop_crc32c_use_hw = !force_software && __builtin_cpu_supports("sse4.2");
#else
    (void)force_software;
    kop_crc32c_use_hw = 0;
#endif
}

static inline int kop_crc32c_hw_available(void)
{
#if KOP_CRC32C_HAVE_HW
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2");
#else
    return 0;
#endif
}

/* raw-register update with the selected implementation */
static inline uint32_t kop_crc32c_update(uint32_t crc, const unsigned char *p, size_t n)
{
#if KOP_CRC32C_HAVE_HW
    if (kop_crc32c_use_hw)
        return kop_crc32c_hw(crc, p, n);
#endif
    return kop_crc32c_sw(crc, p, n);
}

/* raw-register update with the hardware code; only call when
 * kop_crc32c_hw_available() */
static inline uint32_t kop_crc32c_update_hw(uint32_t crc, const unsigned char *p, size_t n)
{
#if KOP_CRC32C_HAVE_HW
    return kop_crc32c_hw(crc, p, n);
#else
    return kop_crc32c_sw(crc, p, n);
#endif
}

#endif /* KOP_FAST_CRC32C_H */
