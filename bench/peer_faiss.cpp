/*
 * peer_faiss.cpp — FAISS behind the bench_peer_ops interface of peers.h:
 * "faiss-hnsw" (faiss::IndexHNSWFlat) and "faiss-flat" (faiss::IndexFlat),
 * for vecfs-bench-engine --compare.
 *
 * How it is used, as FAISS's users do:
 *   - l2: METRIC_L2 on the raw vectors; dot: METRIC_INNER_PRODUCT on the
 *     raw vectors; cosine: base and queries normalized to unit length, then
 *     METRIC_INNER_PRODUCT.
 *   - IndexHNSWFlat(dim, M, metric) with hnsw.efConstruction set, built by
 *     one add() of all rows with OpenMP on build_threads threads.
 *   - Search: hnsw.efSearch set once per run; each query is one search(1,
 *     ...) call on the calling thread, whose OpenMP team is set to one
 *     thread so --threads means the same for every engine. (FAISS's
 *     search allocates a visited table per call; that is its cost for a
 *     query that arrives alone, and it is included.)
 * Invariants: 1. FAISS labels are row numbers. 2. No C++ exception
 * crosses the extern "C" boundary.
 */
#include "peers.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <omp.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <memory>
#include <new>
#include <vector>

namespace
{

struct faiss_peer {
    size_t dim = 0;
    bool normalize = false;
    std::unique_ptr<faiss::Index> index;
    faiss::IndexHNSWFlat *hnsw = nullptr; /* index, when it is the HNSW one */
};

void normalize_into(const float *v, float *out, size_t dim)
{
    double s = 0;
    for (size_t i = 0; i < dim; i++)
        s += (double)v[i] * v[i];
    float inv = s > 0 ? (float)(1.0 / std::sqrt(s)) : 0.0f;
    for (size_t i = 0; i < dim; i++)
        out[i] = v[i] * inv;
}

/* OpenMP's team size is per thread: make this one search on its own. */
void single_thread_search()
{
    thread_local bool set = false;
    if (!set) {
        omp_set_num_threads(1);
        set = true;
    }
}

int faiss_build(bool hnsw, const bench_peer_config *cfg, const float *base, size_t n, void **state,
                char *err, size_t errlen)
{
    *state = nullptr;
    try {
        auto p = std::make_unique<faiss_peer>();
        faiss::MetricType mt =
            cfg->metric == VF_METRIC_L2 ? faiss::METRIC_L2 : faiss::METRIC_INNER_PRODUCT;
        p->dim = cfg->dim;
        p->normalize = cfg->metric == VF_METRIC_COSINE;
        if (hnsw) {
            auto *ix = new faiss::IndexHNSWFlat((int)cfg->dim, (int)cfg->m, mt);
            p->index.reset(ix);
            p->hnsw = ix;
            ix->hnsw.efConstruction = (int)cfg->ef_construction;
        } else {
            p->index.reset(new faiss::IndexFlat((faiss::Index::idx_t)cfg->dim, mt));
        }
        std::vector<float> normed;
        const float *rows = base;
        if (p->normalize) {
            normed.resize(n * cfg->dim);
            for (size_t i = 0; i < n; i++)
                normalize_into(base + i * cfg->dim, normed.data() + i * cfg->dim, cfg->dim);
            rows = normed.data();
        }
        omp_set_num_threads(cfg->build_threads ? (int)cfg->build_threads : 1);
        p->index->add((faiss::Index::idx_t)n, rows);
        *state = p.release();
        return 0;
    } catch (const std::bad_alloc &) {
        snprintf(err, errlen, "faiss: out of memory");
        return -ENOMEM;
    } catch (const std::exception &e) {
        snprintf(err, errlen, "faiss: %s", e.what());
        return -EIO;
    }
}

int faiss_hnsw_build(const bench_peer_config *cfg, const float *base, size_t n, void **state,
                     char *err, size_t errlen)
{
    return faiss_build(true, cfg, base, n, state, err, errlen);
}

int faiss_flat_build(const bench_peer_config *cfg, const float *base, size_t n, void **state,
                     char *err, size_t errlen)
{
    return faiss_build(false, cfg, base, n, state, err, errlen);
}

void faiss_set_ef(void *state, size_t ef)
{
    auto *p = static_cast<faiss_peer *>(state);
    if (p->hnsw != nullptr)
        p->hnsw->hnsw.efSearch = (int)ef;
}

/* An IDSelector that asks the benchmark's filter. */
struct filter_selector : faiss::IDSelector {
    const vf_filter *filter;
    explicit filter_selector(const vf_filter *f) : filter(f) {}
    bool is_member(idx_t id) const override
    {
        return filter->accept(filter->ctx, (uint32_t)id);
    }
};

/* One query of k through search() with params (NULL: none). */
int faiss_search_with(faiss_peer *p, const float *query, size_t k,
                      const faiss::SearchParameters *params, uint32_t *ids, size_t *n_out)
{
    *n_out = 0;
    try {
        thread_local std::vector<float> tmp;
        thread_local std::vector<float> dist;
        thread_local std::vector<faiss::Index::idx_t> labels;
        single_thread_search();
        const float *q = query;
        if (p->normalize) {
            tmp.resize(p->dim);
            normalize_into(query, tmp.data(), p->dim);
            q = tmp.data();
        }
        dist.resize(k);
        labels.resize(k);
        p->index->search(1, q, (faiss::Index::idx_t)k, dist.data(), labels.data(), params);
        size_t cnt = 0;
        for (size_t i = 0; i < k; i++) {
            if (labels[i] < 0) /* FAISS pads a short result with -1 */
                break;
            ids[cnt++] = (uint32_t)labels[i];
        }
        *n_out = cnt;
        return 0;
    } catch (const std::bad_alloc &) {
        return -ENOMEM;
    } catch (...) {
        return -EIO;
    }
}

int faiss_search(void *state, const float *query, size_t k, uint32_t *ids, size_t *n_out)
{
    return faiss_search_with(static_cast<faiss_peer *>(state), query, k, nullptr, ids, n_out);
}

/* FAISS 1.7.3's own filter: SearchParametersHNSW with an IDSelector, at
 * the efSearch of the last set_ef(). */
int faiss_search_filtered(void *state, const float *query, size_t k, const vf_filter *filter,
                          size_t n, uint32_t *ids, size_t *n_out)
{
    (void)n;
    auto *p = static_cast<faiss_peer *>(state);
    filter_selector sel(filter);
    faiss::SearchParametersHNSW params;
    params.sel = &sel;
    params.efSearch = p->hnsw->hnsw.efSearch;
    return faiss_search_with(p, query, k, &params, ids, n_out);
}

/*
 * Counted from the index's containers (allocated capacity):
 *   IndexFlat     codes (4 * dim per vector);
 *   IndexHNSWFlat its IndexFlat storage plus hnsw.neighbors (int32 slots:
 *                 2M on level 0 and M per upper level, per vector),
 *                 hnsw.offsets (size_t per vector) and hnsw.levels (int).
 */
size_t faiss_memory(void *state)
{
    auto *p = static_cast<faiss_peer *>(state);
    if (p->hnsw == nullptr) {
        auto *flat = static_cast<faiss::IndexFlat *>(p->index.get());
        return flat->codes.capacity();
    }
    const faiss::HNSW &g = p->hnsw->hnsw;
    size_t bytes = g.neighbors.capacity() * sizeof(faiss::HNSW::storage_idx_t) +
                   g.offsets.capacity() * sizeof(size_t) + g.levels.capacity() * sizeof(int);
    auto *storage = dynamic_cast<faiss::IndexFlatCodes *>(p->hnsw->storage);
    if (storage != nullptr)
        bytes += storage->codes.capacity();
    return bytes;
}

void faiss_free(void *state)
{
    delete static_cast<faiss_peer *>(state);
}

} // namespace

extern "C" const bench_peer_ops bench_peer_faiss_hnsw = {
    "faiss-hnsw", true,         faiss_hnsw_build, faiss_set_ef,
    faiss_search, faiss_memory, faiss_free,       faiss_search_filtered,
};

extern "C" const bench_peer_ops bench_peer_faiss_flat = {
    "faiss-flat", false,        faiss_flat_build, faiss_set_ef,
    faiss_search, faiss_memory, faiss_free,       nullptr,
};
