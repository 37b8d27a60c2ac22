/* eng_common.h: status codes, portability macros and size helpers shared by every C file.
 * No intrinsics here: this header is included from every ISA group. */
#ifndef ENG_COMMON_H
#define ENG_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum eng_status {
  ENG_OK = 0,
  ENG_ERR_INVALID_ARG = 1, /* a size, stride or enum value is out of range */
  ENG_ERR_NOMEM = 2,       /* an allocation failed */
  ENG_ERR_OVERFLOW = 3,    /* a size computation would overflow size_t */
  ENG_ERR_UNSUPPORTED = 4, /* the request is valid but this build cannot do it */
} eng_status_t;

const char *eng_status_str(eng_status_t s);

#if defined(_MSC_VER)
#define ENG_RESTRICT __restrict
#define ENG_ALIGN(n) __declspec(align(n))
#define ENG_INLINE static __forceinline
#define ENG_EXPORT
#else
#define ENG_RESTRICT __restrict__
#define ENG_ALIGN(n) __attribute__((aligned(n)))
#define ENG_INLINE static inline __attribute__((always_inline))
#define ENG_EXPORT __attribute__((visibility("default")))
#endif

#define ENG_MIN(a, b) ((a) < (b) ? (a) : (b))
#define ENG_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Multiply two sizes; returns 0 and leaves *out untouched if the product overflows size_t. */
static inline int eng_mul_size(size_t a, size_t b, size_t *out) {
  if (a != 0 && b > SIZE_MAX / a) return 0;
  *out = a * b;
  return 1;
}

#ifdef __cplusplus
}
#endif
#endif /* ENG_COMMON_H */
