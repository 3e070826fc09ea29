// tests/main.cpp: the doctest runner; says once which devices the device tests run on.
#define DOCTEST_CONFIG_IMPLEMENT
#include "tests/harness.h"

#include <cstdio>

int main(int argc, char** argv) {
    const auto& skip = lumen::test::cuda_skip_reason();
    if (!skip.empty()) std::printf("lumen tests: CUDA cases skipped: %s\n", skip.c_str());
    doctest::Context context(argc, argv);
    return context.run();
}
