/*
 * replay_main.c — runs a libFuzzer target without libFuzzer, so every fuzz
 * target also runs in the ordinary test suite (with ASan/UBSan in CI).
 *
 * Usage: fuzz_<name> [CORPUS_DIR_OR_FILE ...]
 * Feeds every file given (directories are walked one level deep), then a
 * fixed number of pseudo-random mutations of those inputs, to
 * LLVMFuzzerTestOneInput. The seed is printed so a failure can be replayed
 * with VECFS_FUZZ_SEED=<seed>.
 *
 * Invariants
 *   1. The target sees exactly the bytes of a buffer of the stated length,
 *      allocated to that length, so an over-read trips ASan.
 *   2. A target returning non-zero is a test failure.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../test_rng.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MUTATIONS 2000u
#define REPLAY_MAX_INPUT (1u << 20)

static int run_exact(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return -ENOMEM;
    if (size)
        memcpy(copy, data, size);
    int rc = LLVMFuzzerTestOneInput(copy, size);
    free(copy);
    return rc;
}

static int read_file(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    uint8_t *buf = malloc(REPLAY_MAX_INPUT);
    if (!buf) {
        fclose(f);
        return -ENOMEM;
    }
    *len = fread(buf, 1, REPLAY_MAX_INPUT, f);
    fclose(f);
    *out = buf;
    return 0;
}

/* Flips, inserts, deletes and truncates bytes of `seed` into a new buffer. */
static int run_mutation(const uint8_t *seed, size_t seed_len)
{
    size_t cap = seed_len + 64;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    memcpy(buf, seed, seed_len);
    size_t len = seed_len;
    unsigned edits = 1 + (unsigned)(rng_next() % 8);
    for (unsigned e = 0; e < edits; e++) {
        uint64_t r = rng_next();
        size_t at = len ? (size_t)(r >> 8) % len : 0;
        switch (r % 5) {
        case 0:
            if (len)
                buf[at] ^= (uint8_t)(1u << ((r >> 40) % 8));
            break;
        case 1:
            if (len)
                buf[at] = (uint8_t)(r >> 32);
            break;
        case 2:
            if (len < cap) {
                memmove(buf + at + 1, buf + at, len - at);
                buf[at] = (uint8_t)(r >> 48);
                len++;
            }
            break;
        case 3:
            if (len) {
                memmove(buf + at, buf + at + 1, len - at - 1);
                len--;
            }
            break;
        default:
            len = at;
            break;
        }
    }
    int rc = run_exact(buf, len);
    free(buf);
    return rc;
}

typedef struct seed_list {
    uint8_t **data;
    size_t *len;
    size_t n;
} seed_list;

static int seed_add(seed_list *s, const char *path)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = read_file(path, &data, &len);
    if (rc)
        return rc;
    uint8_t **nd = realloc(s->data, (s->n + 1) * sizeof(*nd));
    size_t *nl = nd ? realloc(s->len, (s->n + 1) * sizeof(*nl)) : NULL;
    if (nd)
        s->data = nd;
    if (!nl) {
        free(data);
        return -ENOMEM;
    }
    s->len = nl;
    s->data[s->n] = data;
    s->len[s->n++] = len;
    return 0;
}

static int seed_add_path(seed_list *s, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return seed_add(s, path);
    DIR *d = opendir(path);
    if (!d)
        return -errno;
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char full[4096];
        snprintf(full, sizeof(full), "%s/%s", path, de->d_name);
        rc = seed_add(s, full);
    }
    closedir(d);
    return rc;
}

int main(int argc, char **argv)
{
    seed_list seeds = {0};
    int failures = 0;
    const char *env_seed = getenv("VECFS_FUZZ_SEED");
    rng_state = env_seed ? strtoull(env_seed, NULL, 10) : 0x5eed1234abcdULL;
    if (rng_state == 0)
        rng_state = 1;
    printf("replay seed %llu\n", (unsigned long long)rng_state);

    for (int i = 1; i < argc; i++) {
        int rc = seed_add_path(&seeds, argv[i]);
        if (rc) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(-rc));
            return 1;
        }
    }
    static const uint8_t empty[1];
    if (run_exact(empty, 0) != 0)
        failures++;
    for (size_t i = 0; i < seeds.n; i++)
        if (run_exact(seeds.data[i], seeds.len[i]) != 0)
            failures++;
    for (unsigned m = 0; seeds.n && m < REPLAY_MUTATIONS; m++) {
        size_t i = (size_t)(rng_next() % seeds.n);
        if (run_mutation(seeds.data[i], seeds.len[i]) != 0)
            failures++;
    }
    printf("%zu seeds, %u mutations, %d failures\n", seeds.n, seeds.n ? REPLAY_MUTATIONS : 0,
           failures);
    for (size_t i = 0; i < seeds.n; i++)
        free(seeds.data[i]);
    free(seeds.data);
    free(seeds.len);
    return failures ? 1 : 0;
}
