#pragma once
// Order statistics over repetitions. Medians, not means: a concurrent compile on a
// shared host produces outliers in one direction only.
#include <cstddef>
#include <vector>

namespace microvm::bench {

struct Summary {
  size_t n = 0;
  double median = 0, min = 0, max = 0;
};

Summary summarize(std::vector<double> samples);

}  // namespace microvm::bench
