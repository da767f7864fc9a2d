// upload.cu - the model's weights, norms and tables into the device arena.
//
// The model is a memory-mapped file. cudaMemcpyAsync from such pageable memory
// stages it through a small driver buffer, one copy at a time, and the first
// touch of each page faults the file in on the same thread. Instead several
// host threads each own two pinned staging buffers and a stream: a thread takes
// the next chunk of the next tensor, copies it into a free buffer (memcpy from
// the map, or bf16 -> f32 widening), and queues its DMA while it fills the other
// buffer. Disk or page-cache reads, host copies and DMA overlap.
// Afterwards, on the backend's stream: the I2_S sanitize pass (rmsnorm_quant.cu)
// and a zeroed KV cache, then one synchronise.
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "backend_cuda.cuh"
#include "cuda_check.cuh"

#define BN_UP_CHUNK ((size_t)4 << 20) // bytes of device data a staging buffer holds
#define BN_UP_MAX_THREADS 4

typedef struct up_job {
    void *dst;
    const void *src;
    size_t bytes; // device bytes
    bool widen;   // src is bf16, dst f32
} up_job;

typedef struct up_plan {
    const up_job *jobs;
    int n_jobs;
    size_t n_chunks;    // over all jobs
    size_t *first;      // [n_jobs + 1]: index of each job's first chunk
    size_t next;        // next chunk to take (atomic)
    int failed;         // atomic: someone failed
    pthread_mutex_t mu; // guards err
    bn_error err;
} up_plan;

static size_t chunks_of(size_t bytes) { return (bytes + BN_UP_CHUNK - 1) / BN_UP_CHUNK; }

static void stage(const up_job *j, size_t off, size_t n, void *buf) {
    if (!j->widen) {
        memcpy(buf, (const uint8_t *)j->src + off, n);
        return;
    }
    const uint16_t *src = (const uint16_t *)j->src + off / 4;
    uint32_t *dst = (uint32_t *)buf;
    for (size_t i = 0; i < n / 4; i++) dst[i] = (uint32_t)src[i] << 16; // bf16 is the top half of an f32
}

static int worker_run(up_plan *p, bn_error *err) {
    void *buf[2] = {NULL, NULL};
    cudaEvent_t done[2] = {NULL, NULL};
    cudaStream_t st = NULL;
    int rc = -1;
    cudaError_t e = cudaSetDevice(0);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking);
    for (int b = 0; b < 2 && e == cudaSuccess; b++) {
        e = cudaMallocHost(&buf[b], BN_UP_CHUNK);
        if (e == cudaSuccess) e = cudaEventCreateWithFlags(&done[b], cudaEventDisableTiming);
    }
    int job = 0, b = 0;
    while (e == cudaSuccess && !__atomic_load_n(&p->failed, __ATOMIC_RELAXED)) {
        const size_t c = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED);
        if (c >= p->n_chunks) break;
        while (p->first[job + 1] <= c) job++; // chunks are taken in increasing order
        const up_job *j = &p->jobs[job];
        const size_t off = (c - p->first[job]) * BN_UP_CHUNK;
        const size_t n = j->bytes - off < BN_UP_CHUNK ? j->bytes - off : BN_UP_CHUNK;
        e = cudaEventSynchronize(done[b]); // the DMA that last used this buffer is done
        if (e != cudaSuccess) break;
        stage(j, off, n, buf[b]);
        e = cudaMemcpyAsync((uint8_t *)j->dst + off, buf[b], n, cudaMemcpyHostToDevice, st);
        if (e == cudaSuccess) e = cudaEventRecord(done[b], st);
        b ^= 1;
    }
    if (e == cudaSuccess) e = cudaStreamSynchronize(st);
    if (e == cudaSuccess) rc = 0;
    else bn_errorf(err, "cuda: weight upload failed: %s", cudaGetErrorString(e));
    for (int i = 0; i < 2; i++) {
        if (done[i]) (void)cudaEventDestroy(done[i]);
        if (buf[i]) (void)cudaFreeHost(buf[i]);
    }
    if (st) (void)cudaStreamDestroy(st);
    return rc;
}

static void *worker_main(void *arg) {
    up_plan *p = (up_plan *)arg;
    bn_error err;
    if (worker_run(p, &err)) {
        pthread_mutex_lock(&p->mu);
        if (!__atomic_exchange_n(&p->failed, 1, __ATOMIC_RELAXED)) p->err = err;
        pthread_mutex_unlock(&p->mu);
    }
    return NULL;
}

static int upload_jobs(const up_job *jobs, int n_jobs, bn_error *err) {
    up_plan p;
    memset(&p, 0, sizeof p);
    p.jobs = jobs;
    p.n_jobs = n_jobs;
    p.first = (size_t *)calloc((size_t)n_jobs + 1, sizeof(size_t)); // first[0] = 0
    if (!p.first) return bn_errorf(err, "cuda: out of host memory");
    for (int i = 0; i < n_jobs; i++) p.first[i + 1] = p.first[i] + chunks_of(jobs[i].bytes);
    p.n_chunks = p.first[n_jobs];
    pthread_mutex_init(&p.mu, NULL);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int n_threads = cpus < 2 ? 1 : cpus > BN_UP_MAX_THREADS ? BN_UP_MAX_THREADS : (int)cpus;
    pthread_t th[BN_UP_MAX_THREADS];
    int started = 0;
    for (; started < n_threads - 1; started++)
        if (pthread_create(&th[started], NULL, worker_main, &p)) break;
    worker_main(&p); // this thread works too
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    pthread_mutex_destroy(&p.mu);
    free(p.first);
    if (p.failed) return bn_errorf(err, "%s", p.err.msg);
    return 0;
}

int bn_cuda_upload_model(bn_backend *be, bn_error *err) {
    const bn_hparams *hp = &be->hp;
    const bn_model *m = be->m;
    const int per_layer = 11; // the jobs of one layer below
    up_job *jobs = (up_job *)calloc((size_t)hp->n_layer * per_layer + 3, sizeof *jobs);
    // Without sub-norms (the llama family) their weights are all ones and the
    // kernels skip the normalization (forward_cuda.cu, BN_NQ_NO_NORM).
    const size_t n_ones = hp->sub_norms ? 0 : (size_t)((uint32_t)be->nq > hp->n_ff ? (uint32_t)be->nq : hp->n_ff);
    float *ones = n_ones ? (float *)malloc(n_ones * sizeof(float)) : NULL;
    if (!jobs || (n_ones && !ones)) {
        free(jobs);
        free(ones);
        return bn_errorf(err, "cuda: out of host memory");
    }
    for (size_t i = 0; i < n_ones; i++) ones[i] = 1.0f;
    int n = 0;
#define JOB(d, s, b) (jobs[n++] = (up_job){(void *)(d), (s), (b), false})
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const bn_layer *L = &m->layers[l];
        const bn_cuda_layer *C = &be->layers[l];
        const size_t bq = bn_i2s_code_bytes(&L->wq), bk = bn_i2s_code_bytes(&L->wk);
        const size_t bgt = bn_i2s_code_bytes(&L->w_gate);
        JOB(C->wqkv, L->wq.data, bq);
        JOB(C->wqkv + bq, L->wk.data, bk);
        JOB(C->wqkv + bq + bk, L->wv.data, bn_i2s_code_bytes(&L->wv));
        JOB(C->wo, L->wo.data, bn_i2s_code_bytes(&L->wo));
        JOB(C->wgu, L->w_gate.data, bgt);
        JOB(C->wgu + bgt, L->w_up.data, bn_i2s_code_bytes(&L->w_up));
        JOB(C->wdown, L->w_down.data, bn_i2s_code_bytes(&L->w_down));
        JOB(C->attn_norm, L->attn_norm.f32, hp->n_embd * 4);
        JOB(C->attn_sub_norm, hp->sub_norms ? L->attn_sub_norm.f32 : ones, (size_t)be->nq * 4);
        JOB(C->ffn_norm, L->ffn_norm.f32, hp->n_embd * 4);
        JOB(C->ffn_sub_norm, hp->sub_norms ? L->ffn_sub_norm.f32 : ones, hp->n_ff * 4);
    }
    const size_t VE = (size_t)hp->n_vocab * hp->n_embd;
    jobs[n++] = (up_job){(void *)be->embd, m->tok_embd.data, VE * bn_cuda_type_size(be->embd_type),
                         m->tok_embd.type == BN_GGML_BF16};
    if (!m->output_tied)
        jobs[n++] = (up_job){(void *)be->head, m->output.data, VE * bn_cuda_type_size(be->head_type),
                             m->output.type == BN_GGML_BF16};
    JOB(be->out_norm, m->output_norm.f32, hp->n_embd * 4);
#undef JOB
    const int rc = upload_jobs(jobs, n, err);
    free(jobs);
    free(ones);
    if (rc) return -1;

    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const bn_layer *L = &m->layers[l];
        const bn_cuda_layer *C = &be->layers[l];
        const size_t qkv = bn_i2s_code_bytes(&L->wq) + bn_i2s_code_bytes(&L->wk) + bn_i2s_code_bytes(&L->wv);
        const size_t gu = bn_i2s_code_bytes(&L->w_gate) + bn_i2s_code_bytes(&L->w_up);
        BN_CUDA_TRY(bn_cuda_i2s_sanitize((uint8_t *)C->wqkv, (int64_t)qkv, be->st));
        BN_CUDA_TRY(bn_cuda_i2s_sanitize((uint8_t *)C->wo, (int64_t)bn_i2s_code_bytes(&L->wo), be->st));
        BN_CUDA_TRY(bn_cuda_i2s_sanitize((uint8_t *)C->wgu, (int64_t)gu, be->st));
        BN_CUDA_TRY(bn_cuda_i2s_sanitize((uint8_t *)C->wdown, (int64_t)bn_i2s_code_bytes(&L->w_down), be->st));
    }
    BN_CUDA_TRY(cudaMemsetAsync(be->kc, 0, be->kv_bytes, be->st));
    BN_CUDA_TRY(cudaMemsetAsync(be->vc, 0, be->kv_bytes, be->st));
    if (be->head_q8) // the CPU's int8 head: each row quantized on its own (bit-identical)
        BN_CUDA_TRY(bn_cuda_head_q8_quantize(be->head, be->head_type, (int)hp->n_embd, (int)hp->n_vocab, be->head_q,
                                             be->head_rs, be->st));
    BN_CUDA_TRY(cudaMemsetAsync(be->head_counter, 0, sizeof(unsigned), be->st));
    BN_CUDA_TRY(cudaMemsetAsync(be->counters, 0, be->counter_bytes, be->st));
    BN_CUDA_TRY(cudaMemcpyAsync(be->d_layers, be->layers, sizeof(bn_cuda_layer) * hp->n_layer, cudaMemcpyHostToDevice,
                                be->st));
    BN_CUDA_TRY(cudaMemsetAsync(be->persist_sync, 0, 2 * sizeof(unsigned), be->st));
    BN_CUDA_TRY(cudaStreamSynchronize(be->st));
    return 0;
}
