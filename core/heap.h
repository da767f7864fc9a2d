// heap.h - a binary heap over a caller-owned array, for any element type: the
// BPE and SentencePiece tokenizers both pick their next merge from one.
//
// BN_HEAP_DEFINE(name, T, first) defines, for elements of type T ordered by
// `bool first(const T *a, const T *b)` (a comes out before b):
//   name_push(h, &n, x)  adds x to h[0..n) (the array must have room for n + 1)
//   name_pop(h, &n)      removes and returns the first element (n > 0)
// A macro, not void pointers and a function pointer, so the comparison inlines
// in the tokenizers' inner loops.
#ifndef BN_HEAP_H
#define BN_HEAP_H

#include <stdbool.h>
#include <stddef.h>

#define BN_HEAP_DEFINE(name, T, first)                                                 \
    static inline void name##_push(T *h, size_t *n, T x) {                             \
        size_t i = (*n)++;                                                             \
        while (i > 0) {                                                                \
            const size_t p = (i - 1) / 2;                                              \
            if (!first(&x, &h[p])) break;                                              \
            h[i] = h[p];                                                               \
            i = p;                                                                     \
        }                                                                              \
        h[i] = x;                                                                      \
    }                                                                                  \
    static inline T name##_pop(T *h, size_t *n) {                                      \
        const T top = h[0], last = h[--*n];                                            \
        size_t i = 0;                                                                  \
        for (;;) {                                                                     \
            size_t c = 2 * i + 1;                                                      \
            if (c >= *n) break;                                                        \
            if (c + 1 < *n && first(&h[c + 1], &h[c])) c++;                            \
            if (!first(&h[c], &last)) break;                                           \
            h[i] = h[c];                                                               \
            i = c;                                                                     \
        }                                                                              \
        if (*n) h[i] = last;                                                           \
        return top;                                                                    \
    }

#endif
