/*
 * peer_hnswlib.cpp — hnswlib::HierarchicalNSW<float> behind the
 * bench_peer_ops interface of peers.h, for vecfs-bench-engine --compare.
 *
 * This file is compiled with -O3 -march=native (bench/meson.build): hnswlib
 * is header-only, so its distance functions are built here, and this is the
 * speed bar vecfs is measured against.
 *
 * How it is used, as hnswlib's own users do:
 *   - l2: L2Space on the raw vectors; dot: InnerProductSpace on the raw
 *     vectors; cosine: every base and query vector is normalized to unit
 *     length, then InnerProductSpace (hnswlib has no cosine space).
 *   - The index is created for exactly n elements, with M, ef_construction
 *     and the default seed; it is built with addPoint from build_threads
 *     std::threads that take rows from a shared atomic counter (row 0 is
 *     added first, alone, so every thread finds an entry point).
 *   - Search: setEf(ef) once per run, then searchKnn from the bench's
 *     threads (hnswlib allows concurrent searches).
 * Invariants: 1. labels are row numbers, so a label is the id recall uses.
 * 2. No C++ exception crosses the extern "C" boundary: each entry point
 *    catches and returns a negative errno.
 */
#include "peers.h"

#include <hnswlib/hnswlib.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <memory>
#include <new>
#include <thread>
#include <vector>

namespace
{

struct hnsw_peer {
    size_t dim = 0;
    bool normalize = false;
    unsigned build_threads = 1;
    std::unique_ptr<hnswlib::SpaceInterface<float>> space;
    std::unique_ptr<hnswlib::HierarchicalNSW<float>> index;
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

int hnsw_build(const bench_peer_config *cfg, const float *base, size_t n, void **state, char *err,
               size_t errlen)
{
    *state = nullptr;
    try {
        auto p = std::make_unique<hnsw_peer>();
        p->dim = cfg->dim;
        p->normalize = cfg->metric == VF_METRIC_COSINE;
        p->build_threads = cfg->build_threads ? cfg->build_threads : 1;
        if (cfg->metric == VF_METRIC_L2)
            p->space = std::make_unique<hnswlib::L2Space>(cfg->dim);
        else
            p->space = std::make_unique<hnswlib::InnerProductSpace>(cfg->dim);
        p->index = std::make_unique<hnswlib::HierarchicalNSW<float>>(p->space.get(), n, cfg->m,
                                                                     cfg->ef_construction);

        hnswlib::HierarchicalNSW<float> *idx = p->index.get();
        const size_t dim = cfg->dim;
        const bool norm = p->normalize;
        std::atomic<size_t> next{1};
        std::atomic<int> failed{0};
        auto add = [&](size_t row, std::vector<float> &tmp) {
            const float *v = base + row * dim;
            if (norm) {
                normalize_into(v, tmp.data(), dim);
                v = tmp.data();
            }
            idx->addPoint(v, (hnswlib::labeltype)row);
        };
        std::vector<float> first(dim);
        if (n > 0)
            add(0, first);
        auto worker = [&]() {
            std::vector<float> tmp(dim);
            try {
                for (size_t row; (row = next.fetch_add(1)) < n;)
                    add(row, tmp);
            } catch (...) {
                failed.store(1);
            }
        };
        std::vector<std::thread> pool;
        unsigned nt = cfg->build_threads ? cfg->build_threads : 1;
        for (unsigned t = 1; t < nt; t++)
            pool.emplace_back(worker);
        worker();
        for (auto &t : pool)
            t.join();
        if (failed.load()) {
            snprintf(err, errlen, "hnswlib: addPoint failed");
            return -EIO;
        }
        *state = p.release();
        return 0;
    } catch (const std::bad_alloc &) {
        snprintf(err, errlen, "hnswlib: out of memory");
        return -ENOMEM;
    } catch (const std::exception &e) {
        snprintf(err, errlen, "hnswlib: %s", e.what());
        return -EIO;
    }
}

void hnsw_set_ef(void *state, size_t ef)
{
    static_cast<hnsw_peer *>(state)->index->setEf(ef);
}

/* searchKnn for `ask` neighbours, nearest first, keeping those `filter`
 * (NULL: all) passes, at most k. */
int hnsw_search_kept(hnsw_peer *p, const float *query, size_t ask, size_t k,
                     const vf_filter *filter, uint32_t *ids, size_t *n_out)
{
    *n_out = 0;
    try {
        thread_local std::vector<float> tmp;
        thread_local std::vector<uint32_t> order;
        const float *q = query;
        if (p->normalize) {
            tmp.resize(p->dim);
            normalize_into(query, tmp.data(), p->dim);
            q = tmp.data();
        }
        auto res = p->index->searchKnn(q, ask);
        /* searchKnn's queue pops the farthest first. */
        order.resize(res.size());
        for (size_t i = order.size(); i > 0; i--) {
            order[i - 1] = (uint32_t)res.top().second;
            res.pop();
        }
        size_t cnt = 0;
        for (size_t i = 0; i < order.size() && cnt < k; i++)
            if (filter == nullptr || filter->accept(filter->ctx, order[i]))
                ids[cnt++] = order[i];
        *n_out = cnt;
        return 0;
    } catch (const std::bad_alloc &) {
        return -ENOMEM;
    } catch (...) {
        return -EIO;
    }
}

int hnsw_search(void *state, const float *query, size_t k, uint32_t *ids, size_t *n_out)
{
    return hnsw_search_kept(static_cast<hnsw_peer *>(state), query, k, k, nullptr, ids, n_out);
}

/* Post-filtering, as hnswlib 0.6.2's users must (it has no filter): ask
 * for as many neighbours as should hold k passing ones twice over. */
int hnsw_search_filtered(void *state, const float *query, size_t k, const vf_filter *filter,
                         size_t n, uint32_t *ids, size_t *n_out)
{
    size_t passing = filter->passing ? filter->passing : 1;
    double want = 2.0 * (double)k * (double)n / (double)passing;
    size_t ask = want > BENCH_POSTFILTER_MAX ? BENCH_POSTFILTER_MAX : (size_t)want;
    if (ask < k)
        ask = k;
    if (ask > n)
        ask = n;
    return hnsw_search_kept(static_cast<hnsw_peer *>(state), query, ask, k, filter, ids, n_out);
}

/*
 * hnswlib 0.6.2 keeps, for an index of max_elements = n:
 *   per element  size_data_per_element_  (level-0 links 4*2M+4, vector
 *                4*dim, label 8), a linkLists_ pointer (8), an
 *                element_levels_ int (4), a link_list_locks_ std::mutex;
 *   per upper level of an element  size_links_per_element_ (4*M+4), one
 *                malloc per element with level > 0 (plus the allocator's
 *                16-byte chunk header);
 *   label_lookup_ (unordered_map<size_t, uint32>): a bucket pointer per
 *                bucket and one node per element (next pointer + key +
 *                value = 24 bytes, a 32-byte chunk with malloc's header);
 *   fixed        link_list_update_locks_ (65536 mutexes);
 *   scratch      the visited-list pool: n unsigned shorts per list, one
 *                list per thread that searched at once. The pool's size is
 *                private, so it is taken as build_threads, the most threads
 *                that used it during the build (vf_hnsw_memory counts vecfs's
 *                per-thread scratch too).
 * size_data_per_element_ alone is the "4*dim + 2*M*4 + ~12" figure often
 * quoted for hnswlib; the rest is what the process really holds besides.
 */
size_t hnsw_memory(void *state)
{
    auto *p = static_cast<hnsw_peer *>(state);
    const hnswlib::HierarchicalNSW<float> *h = p->index.get();
    size_t n = h->max_elements_;
    size_t bytes =
        n * (h->size_data_per_element_ + sizeof(void *) + sizeof(int) + sizeof(std::mutex));
    size_t cnt = h->cur_element_count;
    for (size_t i = 0; i < cnt; i++) {
        int level = h->element_levels_[i];
        if (level > 0)
            bytes += (size_t)level * h->size_links_per_element_ + 16;
    }
    bytes += h->label_lookup_.bucket_count() * sizeof(void *) + h->label_lookup_.size() * 32;
    bytes += h->link_list_update_locks_.size() * sizeof(std::mutex);
    bytes += (size_t)p->build_threads * n * sizeof(hnswlib::vl_type);
    return bytes;
}

void hnsw_free(void *state)
{
    delete static_cast<hnsw_peer *>(state);
}

} // namespace

extern "C" const bench_peer_ops bench_peer_hnswlib = {
    "hnswlib",   true,        hnsw_build, hnsw_set_ef,
    hnsw_search, hnsw_memory, hnsw_free,  hnsw_search_filtered,
};
