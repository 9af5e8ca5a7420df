# cython: language_level=3
# CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320): the checksum zlib.crc32
# computes and venues (OKX, Kraken) put in their book messages.
#
#     from sentrycore.crc32 cimport crc32_update
#     crc = crc32_update(0, text, n)          # == zlib.crc32(text)
#     crc = crc32_update(crc, more, m)        # == zlib.crc32(more, crc)
#
# Slicing-by-8: eight 256-entry tables, filled on first use, take eight input
# bytes per step (one 64-bit load), so a 25-level checksum text (~800 bytes)
# costs well under a microsecond with no Python object.  Each extension that
# cimports this gets its own copy of the tables (8 KB).

from libc.stdint cimport uint32_t

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    static uint32_t sentry_crc32_t[8][256];
    static int sentry_crc32_ready = 0;

    static void sentry_crc32_init(void) {
        uint32_t i, c;
        int k;
        for (i = 0; i < 256; i++) {
            c = i;
            for (k = 0; k < 8; k++)
                c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : (c >> 1);
            sentry_crc32_t[0][i] = c;
        }
        for (i = 0; i < 256; i++)
            for (k = 1; k < 8; k++)
                sentry_crc32_t[k][i] = (sentry_crc32_t[k - 1][i] >> 8) ^
                                       sentry_crc32_t[0][sentry_crc32_t[k - 1][i] & 0xFF];
        sentry_crc32_ready = 1;
    }

    static inline uint32_t sentry_crc32_update(uint32_t crc, const unsigned char* p, size_t n) {
        if (!sentry_crc32_ready)
            sentry_crc32_init();
        crc = ~crc;
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        while (n >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            w ^= crc;
            crc = sentry_crc32_t[7][w & 0xFF] ^ sentry_crc32_t[6][(w >> 8) & 0xFF] ^
                  sentry_crc32_t[5][(w >> 16) & 0xFF] ^ sentry_crc32_t[4][(w >> 24) & 0xFF] ^
                  sentry_crc32_t[3][(w >> 32) & 0xFF] ^ sentry_crc32_t[2][(w >> 40) & 0xFF] ^
                  sentry_crc32_t[1][(w >> 48) & 0xFF] ^ sentry_crc32_t[0][w >> 56];
            p += 8;
            n -= 8;
        }
    #endif
        while (n--)
            crc = sentry_crc32_t[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
        return ~crc;
    }
    """
    uint32_t crc32_update "sentry_crc32_update" (uint32_t crc, const unsigned char* p, size_t n) noexcept nogil
