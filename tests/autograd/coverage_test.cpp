// tests/autograd/coverage_test.cpp: every differentiable op has a gradcheck case, and every
// gradcheck case names a real op. Op files register their names (autograd/registry.h); test
// files register the names they gradcheck (LUMEN_GRADCHECK_COVERS).
#include "tests/harness.h"

using namespace lumen;

TEST_CASE("coverage: every differentiable op has a gradcheck case") {
    const auto& ops = autograd::differentiable_ops();
    const auto& cases = test::gradcheck_cases();
    REQUIRE(ops.size() > 30);  // the registry is linked in (object library) and populated
    for (const std::string& op : ops) {
        INFO("op: " << op);
        CHECK_MESSAGE(cases.contains(op), "differentiable op '" << op << "' has no gradcheck case");
    }
    for (const std::string& c : cases) {
        INFO("case: " << c);
        CHECK_MESSAGE(ops.contains(c), "gradcheck case '" << c << "' names no registered op");
    }
}

TEST_CASE("coverage: recording an unregistered op name is an error") {
    Tensor x = test::leaf({2}, 1);
    Tensor y = x.detach().clone();
    CHECK_THROWS_CONTAINING(autograd::record("no_such_op", y, {x}, [](const Tensor& dy) {
        return autograd::Grads{dy};
    }), "not registered");
}
