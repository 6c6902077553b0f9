/*
 * vector_format.h — the contents of vector files (SPEC §3.1) and the number
 * syntax shared by every text format of vecfs.
 *
 * The format of a vector file is chosen by its name's suffix:
 *   ".f32"   raw little-endian float32, size = 4 * dim (> 0)
 *   ".json"  a JSON array of numbers: [0.5, -1, 2e-3] (RFC 8259 numbers,
 *            JSON white space around them; read with the same strtof
 *            conversion as text, so an array means the same in both)
 *   other    text: numbers separated by white space and/or single commas,
 *            optionally inside one pair of brackets: "0.5 -1 2e-3\n",
 *            "[0.5, -1, 2e-3]", "0.5,-1,2e-3".
 *
 * Text numbers are decimal only: [+-]digits[.digits][(e|E)[+-]digits]
 * (also ".5" and "5."). Hex floats, "nan", "inf", "infinity", empty
 * elements ("1,,2"), a trailing comma, unbalanced brackets and any other
 * byte are -EINVAL. Every value, in every format, must be a finite float32
 * after conversion ("1e39" overflows float32 and is -EINVAL). Numbers are
 * read with strtof on a bounded NUL-terminated copy, so the daemon must run
 * in the "C" numeric locale (it never calls setlocale).
 *
 * Parsers take a pointer and a length; the bytes need not be
 * NUL-terminated and are never read past len. All functions are
 * thread-safe and keep no state.
 */
#ifndef VECFS_FS_VECTOR_FORMAT_H
#define VECFS_FS_VECTOR_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest dimension any file may carry; equals the engine's VF_MAX_DIM
 * (format.c checks this at compile time). */
#define FSD_MAX_DIM 65536u

/* Longest single number accepted in text form (digits, sign, exponent).
 * Longer tokens are -EINVAL; 64 bytes hold any float32 in any precision
 * people write. */
#define FSD_NUMBER_MAX 64u

/* The format of a vector file, from its name. */
typedef enum fsd_vformat {
    FSD_VFORMAT_TEXT = 0, /* anything not below */
    FSD_VFORMAT_F32 = 1,  /* "*.f32" */
    FSD_VFORMAT_JSON = 2, /* "*.json" */
} fsd_vformat;

/* A key/value pair: a filter term or one metadata entry. value holds
 * value_len bytes followed by a NUL (value_len excludes it). Who owns the
 * strings is said by the structure that holds the pair. */
typedef struct fsd_kv {
    char *key; /* NUL-terminated, non-empty, no NUL inside */
    char *value;
    size_t value_len;
} fsd_kv;

/* The format for a file called name (len bytes, not necessarily
 * NUL-terminated). Never fails: unknown suffixes are text. */
fsd_vformat fsd_vformat_from_name(const char *name, size_t len);

/* Parses a vector file's content.
 *   fmt         the format (fsd_vformat_from_name of the file's name)
 *   data, len   the content; data may be NULL only if len is 0
 *   expect_dim  0 to accept any dim in 1..FSD_MAX_DIM, else the only dim
 *               accepted (the collection's)
 *   out         on success a malloc'd array of *dim_out floats, owned by
 *               the caller (free()); NULL on error
 *   dim_out     on success the number of floats; 0 on error
 * Returns 0, or
 *   -EINVAL  malformed content: empty, a bad number, NaN/Inf, a .f32 size
 *            that is not a positive multiple of 4, a JSON value that is not
 *            an array of numbers, or dim != expect_dim
 *   -EFBIG   more than FSD_MAX_DIM numbers
 *   -ENOMEM  */
int fsd_vector_parse(fsd_vformat fmt, const void *data, size_t len, uint32_t expect_dim,
                     float **out, uint32_t *dim_out);

/* Parses the text form only (as fsd_vector_parse with FSD_VFORMAT_TEXT)
 * into a caller's array: at most cap floats are written to out.
 * Returns 0 and *dim_out, or -EINVAL (malformed, or empty), -EFBIG (more
 * than cap numbers). Never allocates; used for query vectors. */
int fsd_vector_parse_text_into(const char *data, size_t len, float *out, uint32_t cap,
                               uint32_t *dim_out);

/* Parses the .json form only into a caller's array, like
 * fsd_vector_parse_text_into: 0 and *dim_out, -EINVAL, -EFBIG (more than
 * cap numbers). Never allocates; used for the rows of .jsonl batches. */
int fsd_vector_parse_json_into(const char *data, size_t len, float *out, uint32_t cap,
                               uint32_t *dim_out);

/* Parses one decimal number token of exactly len bytes (the syntax above,
 * nothing else: no white space). Returns 0 and *out, or -EINVAL
 * (bad syntax, too long, not finite as float32). */
int fsd_number_parse(const char *tok, size_t len, float *out);

/* Formats v (dim finite floats) as file content in format fmt, so that
 * fsd_vector_parse(fmt, ...) returns exactly v again:
 *   F32   4*dim raw little-endian bytes
 *   JSON  "[a, b, c]\n"
 *   TEXT  "a b c\n"
 * using the shortest decimal form of each float that reads back to the
 * same float32 ("0.1", not "0.100000001").
 *   out      a malloc'd buffer of *len_out bytes plus a NUL (not counted),
 *            owned by the caller; NULL on error
 * Returns 0, -EINVAL (dim 0 or > FSD_MAX_DIM, or a value not finite),
 * -ENOMEM. */
int fsd_vector_format(fsd_vformat fmt, const float *v, uint32_t dim, char **out, size_t *len_out);

/* Writes the shortest decimal that strtof reads back to the float f into
 * buf (NUL-terminated, at most 16 bytes plus NUL; size must be >= 17):
 * the fewest significant digits (of those, the nearest to f; from
 * double-conversion), laid out as printf's %g lays them out ("0.1",
 * "1.5e-05", "-0"), but an integer below 1e8 is written in full when that
 * is shorter ("100", not "1e+02"). Returns the length written. Non-finite
 * values are written as "nan"/"inf"/"-inf" (never produced by vecfs
 * files). */
size_t fsd_float_format(float f, char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* VECFS_FS_VECTOR_FORMAT_H */
