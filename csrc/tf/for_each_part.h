// Splitting an op's work over TensorFlow's intra-op thread pool, shared by the op files.
#pragma once

#include <cstdint>
#include <functional>

#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/util/work_sharder.h"

namespace kbf {

// Runs work(begin, end) over [0, parts) in ranges on the op's CPU worker threads;
// `cost_per_part` (roughly cycles) decides how finely the range is cut.
inline void ForEachPart(tensorflow::OpKernelContext* ctx, int64_t parts, int64_t cost_per_part,
                        const std::function<void(int64_t, int64_t)>& work) {
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  tensorflow::Shard(workers->NumThreads(), workers, parts, cost_per_part, work);
}

}  // namespace kbf
