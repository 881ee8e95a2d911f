// KBF_VECTOR_CLONES before a function with a hot element loop: on x86-64 Linux with
// GCC or Clang the compiler builds it for AVX-512, AVX2 and the baseline and picks one
// when the library loads (ifunc), so the loop runs 16 or 8 floats wide where the CPU
// can, from one portable build. Without FMA contraction (ISO C++ mode) every version
// gives the same bits. Elsewhere it expands to nothing.
#pragma once

#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define KBF_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define KBF_VECTOR_CLONES
#endif
