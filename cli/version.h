#pragma once
// `microvm --version`: the version, the git revision it was built from, and the optional
// features compiled in, so a bug report says exactly what ran.
#include <cstdio>

namespace microvm {

void print_version(FILE* out);

}  // namespace microvm
