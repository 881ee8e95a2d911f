// Unit test of the masking core (csrc/core/masking.cc), built with AddressSanitizer
// and UBSan by `make sanitize`. Random batches of every shape, with padding,
// special tokens and "##" pieces, go through MaskBatch; any read or write out
// of bounds shows up as an ASan report. Bad ids and options must be refused.
#include <cstdio>
#include <random>
#include <set>
#include <vector>

#include "core/masking.h"
#include "tests/check.h"

namespace {

// Vocabulary: 0 [PAD], 1 [CLS], 2 [SEP], 3 [MASK] special; 4..49 words; 50..59 "##" pieces.
std::vector<int32_t> Kinds() {
  std::vector<int32_t> kinds(60, kbf::kWordStart);
  for (int i = 0; i < 4; ++i) kinds[i] = kbf::kSpecial;
  for (int i = 50; i < 60; ++i) kinds[i] = kbf::kContinuation;
  return kinds;
}

struct Outputs {
  std::vector<int32_t> masked, positions, labels;
  std::vector<float> weights;
  Outputs(size_t batch, size_t seq, size_t cap)
      : masked(batch * seq), positions(batch * cap), labels(batch * cap), weights(batch * cap) {}
  kbf::MaskingOutputs View() {
    return {masked.data(), positions.data(), labels.data(), weights.data()};
  }
};

void TestRandomBatches() {
  const std::vector<int32_t> kinds = Kinds();
  std::mt19937 gen(7);
  for (int round = 0; round < 300; ++round) {
    const size_t batch = gen() % 6;
    const size_t seq = gen() % 40;
    kbf::MaskingOptions options;
    options.mask_id = 3;
    options.max_predictions = 1 + gen() % 12;
    options.whole_word = gen() % 2 == 0;
    std::vector<int32_t> ids(batch * seq), mask(batch * seq);
    for (size_t r = 0; r < batch; ++r) {
      const size_t length = seq == 0 ? 0 : gen() % (seq + 1);
      for (size_t i = 0; i < seq; ++i) {
        ids[r * seq + i] = i < length ? static_cast<int32_t>(gen() % 60) : 0;
        mask[r * seq + i] = i < length ? 1 : 0;
      }
    }
    Outputs out(batch, seq, options.max_predictions);
    const std::string error = kbf::MaskBatch(ids.data(), mask.data(), batch, seq, kinds.data(),
                                             kinds.size(), options, round, out.View(), 1 + round % 3);
    CHECK(error.empty());
    for (size_t r = 0; r < batch; ++r) {
      std::set<int32_t> seen;
      for (size_t k = 0; k < options.max_predictions; ++k) {
        const size_t slot = r * options.max_predictions + k;
        if (out.weights[slot] == 0.0f) continue;
        const int32_t p = out.positions[slot];
        CHECK(p >= 0 && static_cast<size_t>(p) < seq);
        CHECK(mask[r * seq + p] == 1);
        CHECK(kinds[ids[r * seq + p]] != kbf::kSpecial);
        CHECK(out.labels[slot] == ids[r * seq + p]);
        CHECK(seen.insert(p).second);
      }
      for (size_t i = 0; i < seq; ++i) {
        const int32_t id = out.masked[r * seq + i];
        CHECK(id >= 0 && id < 60);
        if (seen.count(static_cast<int32_t>(i)) == 0) CHECK(id == ids[r * seq + i]);
      }
    }
  }
}

void TestRefusals() {
  const std::vector<int32_t> kinds = Kinds();
  kbf::MaskingOptions options;
  options.mask_id = 3;
  std::vector<int32_t> ids = {1, 60, 2};  // 60 is outside the vocabulary
  Outputs out(1, 3, options.max_predictions);
  CHECK(!kbf::MaskBatch(ids.data(), nullptr, 1, 3, kinds.data(), kinds.size(), options, 0,
                        out.View()).empty());
  ids[1] = -4;
  CHECK(!kbf::MaskBatch(ids.data(), nullptr, 1, 3, kinds.data(), kinds.size(), options, 0,
                        out.View()).empty());
  ids[1] = 5;
  options.mask_id = 99;
  CHECK(!kbf::MaskBatch(ids.data(), nullptr, 1, 3, kinds.data(), kinds.size(), options, 0,
                        out.View()).empty());
  options.mask_id = 3;
  options.mask_rate = 0.95f;
  CHECK(!kbf::MaskBatch(ids.data(), nullptr, 1, 3, kinds.data(), kinds.size(), options, 0,
                        out.View()).empty());
  std::vector<int32_t> bad_kinds = kinds;
  bad_kinds[7] = 5;
  options.mask_rate = 0.8f;
  CHECK(!kbf::MaskBatch(ids.data(), nullptr, 1, 3, bad_kinds.data(), bad_kinds.size(), options,
                        0, out.View()).empty());
  CHECK(kbf::MaskBatch(ids.data(), nullptr, 1, 3, kinds.data(), kinds.size(), options, 0,
                       out.View()).empty());
  CHECK(out.weights[0] == 1.0f && out.positions[0] == 1 && out.labels[0] == 5);
}

}  // namespace

int main() {
  TestRandomBatches();
  TestRefusals();
  if (kbf_test::failures == 0) std::printf("masking_test: all checks passed\n");
  return kbf_test::failures == 0 ? 0 : 1;
}
