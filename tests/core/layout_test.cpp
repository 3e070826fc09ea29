// tests/core/layout_test.cpp: the shape helpers (numel_of, contiguous_strides, shape_str,
// normalize_dim, broadcast_shapes) and Layout: is_contiguous, the view layouts (transpose, permute,
// slice, expand, squeeze, unsqueeze) and view(), which is checked against a brute force: a view of
// a target shape exists exactly when the strides read off the element offsets reproduce them all.
#include "tests/harness.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>
#include <random>

using namespace lumen;

namespace {

// Every element's offset, in row-major order of the layout's shape.
std::vector<int64_t> offsets(const Layout& l) {
    std::vector<int64_t> out;
    const int64_t n = l.numel();
    for (int64_t i = 0; i < n; ++i) {
        int64_t rest = i, off = l.offset;
        for (int64_t d = l.rank() - 1; d >= 0; --d) {
            off += (rest % l.shape[size_t(d)]) * l.strides[size_t(d)];
            rest /= l.shape[size_t(d)];
        }
        out.push_back(off);
    }
    return out;
}

// Brute force: the only strides a view of `target` can have are the offset steps between
// element 0 and the element one step along each dim; the view exists iff they fit everywhere.
bool view_exists(const Layout& l, const Shape& target) {
    const std::vector<int64_t> offs = offsets(l);
    Layout candidate{target, contiguous_strides(target), l.offset};
    const Strides unit = contiguous_strides(target);  // row-major index of each unit step
    for (size_t d = 0; d < target.size(); ++d)
        candidate.strides[d] = target[d] > 1 ? offs[size_t(unit[d])] - offs[0] : 0;
    return offsets(candidate) == offs;
}

// Ordered factorisations of n into `rank` factors (1s included).
void factorizations(int64_t n, size_t rank, Shape& prefix, std::vector<Shape>& out) {
    if (prefix.size() == rank) {
        if (n == 1) out.push_back(prefix);
        return;
    }
    for (int64_t f = 1; f <= n; ++f)
        if (n % f == 0) {
            prefix.push_back(f);
            factorizations(n / f, rank, prefix, out);
            prefix.pop_back();
        }
}

}  // namespace

TEST_CASE("layout: shape helpers") {
    CHECK(numel_of({}) == 1);
    CHECK(numel_of({2, 3, 4}) == 24);
    CHECK(numel_of({2, 0, 4}) == 0);
    CHECK(contiguous_strides({2, 3, 4}) == Strides{12, 4, 1});
    CHECK(contiguous_strides({}) == Strides{});
    CHECK(contiguous_strides({5}) == Strides{1});
    CHECK(contiguous_strides({2, 0, 3}) == Strides{3, 3, 1});  // a 0 dim steps as if it were 1
    CHECK(shape_str({}) == "()");
    CHECK(shape_str({5}) == "(5,)");
    CHECK(shape_str({4, 3}) == "(4, 3)");
    CHECK(shape_str({2, 0, 1}) == "(2, 0, 1)");

    CHECK(normalize_dim(-1, 3, "op") == 2);
    CHECK(normalize_dim(-3, 3, "op") == 0);
    CHECK(normalize_dim(2, 3, "op") == 2);
    CHECK(normalize_dim(0, 0, "op") == 0);   // a scalar accepts dim 0 and -1, as PyTorch does
    CHECK(normalize_dim(-1, 0, "op") == 0);
    CHECK_THROWS_CONTAINING(normalize_dim(3, 3, "size"),
                            "size: dim 3 out of range for a tensor of rank 3 (expected -3 to 2)");
    CHECK_THROWS_CONTAINING(normalize_dim(-4, 3, "sum"), "sum: dim -4 out of range");
    CHECK_THROWS_CONTAINING(normalize_dim(1, 0, "op"), "op: dim 1 out of range for a tensor of rank 0 (expected -1 to 0)");

    CHECK(broadcast_shapes({4, 3}, {3}, "add") == Shape{4, 3});
    CHECK(broadcast_shapes({2, 1, 5}, {3, 1}, "add") == Shape{2, 3, 5});
    CHECK(broadcast_shapes({}, {2, 2}, "add") == Shape{2, 2});
    CHECK(broadcast_shapes({0, 1}, {1, 4}, "add") == Shape{0, 4});
    CHECK(broadcast_shapes({1}, {0}, "add") == Shape{0});
    CHECK_THROWS_CONTAINING(broadcast_shapes({4, 3}, {5}, "add"),
                            "add: shapes do not broadcast: (4, 3) and (5,) (dim 1: 3 vs 5)");
    CHECK_THROWS_CONTAINING(broadcast_shapes({0}, {2}, "mul"), "mul: shapes do not broadcast");
}

TEST_CASE("layout: is_contiguous") {
    CHECK(Layout::contiguous({2, 3, 4}).is_contiguous());
    CHECK(Layout::contiguous({}).is_contiguous());
    CHECK(Layout{{2, 3, 4}, {12, 4, 1}, 7}.is_contiguous());       // an offset does not matter
    CHECK_FALSE(Layout::contiguous({3, 4}).transpose(0, 1).is_contiguous());
    CHECK(Layout{{3, 1, 4}, {4, 99, 1}, 0}.is_contiguous());       // size-1 dims: any stride
    CHECK(Layout{{1, 1}, {5, 8}, 0}.is_contiguous());
    CHECK(Layout::contiguous({4, 1}).transpose(0, 1).is_contiguous());  // (1, 4) strides (1, 1)
    CHECK_FALSE(Layout::contiguous({4, 6}).slice(1, 0, 3, 1).is_contiguous());  // row gaps
    CHECK(Layout::contiguous({4, 6}).slice(0, 1, 3, 1).is_contiguous());  // whole rows, offset 6
    CHECK_FALSE(Layout::contiguous({8}).slice(0, 0, 8, 2).is_contiguous());
    CHECK(Layout::contiguous({8}).slice(0, 3, 4, 2).is_contiguous());     // one element
    CHECK_FALSE(Layout::contiguous({3}).expand({2, 3}).is_contiguous());  // stride 0
    // A tensor without elements is contiguous whatever its strides.
    CHECK(Layout{{0, 3}, {1, 5}, 0}.is_contiguous());
    CHECK(Layout{{3, 0}, {7, 2}, 0}.is_contiguous());
    CHECK(Layout::contiguous({4, 0, 3}).transpose(0, 2).is_contiguous());
}

TEST_CASE("layout: transpose, permute, slice, expand, squeeze, unsqueeze") {
    const Layout c = Layout::contiguous({2, 3, 4});
    Layout t = c.transpose(0, 2);
    CHECK(t.shape == Shape{4, 3, 2});
    CHECK(t.strides == Strides{1, 4, 12});
    Layout p = c.permute({1, 2, 0});
    CHECK(p.shape == Shape{3, 4, 2});
    CHECK(p.strides == Strides{4, 1, 12});

    Layout s = Layout::contiguous({10}).slice(0, 1, 10, 3);  // 1, 4, 7
    CHECK(s.shape == Shape{3});
    CHECK(s.strides == Strides{3});
    CHECK(s.offset == 1);
    CHECK(offsets(s) == std::vector<int64_t>{1, 4, 7});
    CHECK(Layout::contiguous({10}).slice(0, 2, 10, 4).shape == Shape{2});  // 2, 6
    Layout empty = Layout::contiguous({10}).slice(0, 5, 5, 1);
    CHECK(empty.shape == Shape{0});
    CHECK(empty.offset == 0);
    Layout s2 = c.slice(1, 1, 3, 1);  // (2, 2, 4), offset 4
    CHECK(s2.shape == Shape{2, 2, 4});
    CHECK(s2.strides == Strides{12, 4, 1});
    CHECK(s2.offset == 4);
    // Slicing a slice composes offsets and steps.
    Layout ss = Layout::contiguous({20}).slice(0, 2, 20, 3).slice(0, 1, 6, 2);  // 5, 11, 17
    CHECK(offsets(ss) == std::vector<int64_t>{5, 11, 17});

    Layout e = Layout{{3, 1}, {1, 1}, 2}.expand({2, 3, 4});
    CHECK(e.shape == Shape{2, 3, 4});
    CHECK(e.strides == Strides{0, 1, 0});
    CHECK(e.offset == 2);
    CHECK(Layout::contiguous({1}).expand({1}).strides == Strides{1});

    Layout q = Layout::contiguous({2, 1, 4}).squeeze(1);
    CHECK(q.shape == Shape{2, 4});
    CHECK(q.strides == Strides{4, 1});
    Layout u0 = Layout::contiguous({2, 4}).unsqueeze(0);
    CHECK(u0.shape == Shape{1, 2, 4});
    CHECK(u0.strides == Strides{8, 4, 1});
    Layout u2 = Layout::contiguous({2, 4}).unsqueeze(2);
    CHECK(u2.shape == Shape{2, 4, 1});
    CHECK(u2.strides == Strides{4, 1, 1});
    CHECK(Layout::contiguous({2, 4}).unsqueeze(1).is_contiguous());
    CHECK(t.unsqueeze(1).shape == Shape{4, 1, 3, 2});
    CHECK(offsets(t.unsqueeze(1)) == offsets(t));
}

TEST_CASE("layout: view of known layouts") {
    // Contiguous: always a view, with contiguous strides and the offset kept.
    const Layout c{{2, 3, 4}, {12, 4, 1}, 5};
    auto v = c.view({6, 4});
    REQUIRE(v);
    CHECK(v->strides == Strides{4, 1});
    CHECK(v->offset == 5);
    CHECK(c.view({24})->strides == Strides{1});
    CHECK(c.view({1, 24, 1}).has_value());

    // Transposed (4, 3) with strides (1, 4): flattening needs a copy; splitting dim 0 does not.
    const Layout t = Layout::contiguous({3, 4}).transpose(0, 1);
    CHECK_FALSE(t.view({12}).has_value());
    CHECK_FALSE(t.view({3, 4}).has_value());
    CHECK_FALSE(t.view({2, 6}).has_value());
    auto split = t.view({2, 2, 3});
    REQUIRE(split);
    CHECK(split->strides == Strides{2, 1, 4});
    CHECK(offsets(*split) == offsets(t));
    REQUIRE(t.view({4, 1, 3}));
    CHECK(offsets(*t.view({4, 1, 3})) == offsets(t));
    REQUIRE(t.view({1, 4, 3, 1}));

    // Size-1 dims with odd strides do not break chunks.
    const Layout ones{{4, 1, 3}, {1, 100, 4}, 0};
    REQUIRE(ones.view({4, 3}));
    CHECK(ones.view({4, 3})->strides == Strides{1, 4});
    CHECK_FALSE(ones.view({12}).has_value());

    // Slices: (4, 3) columns 0..2 of a (4, 6); rows with step 2 of a (4, 6).
    const Layout cols = Layout::contiguous({4, 6}).slice(1, 0, 3, 1);
    CHECK_FALSE(cols.view({12}).has_value());
    REQUIRE(cols.view({2, 2, 3}));
    CHECK(cols.view({2, 2, 3})->strides == Strides{12, 6, 1});
    CHECK(cols.view({4, 3, 1}).has_value());
    const Layout rows = Layout::contiguous({4, 6}).slice(0, 0, 4, 2);
    REQUIRE(rows.view({2, 2, 3}));
    CHECK(rows.view({2, 2, 3})->strides == Strides{12, 3, 1});
    CHECK_FALSE(rows.view({12}).has_value());

    // Broadcast (stride 0) dims split into stride-0 dims.
    const Layout e = Layout::contiguous({3}).expand({4, 3});
    REQUIRE(e.view({2, 2, 3}));
    CHECK(e.view({2, 2, 3})->strides == Strides{0, 0, 1});
    CHECK_FALSE(e.view({12}).has_value());
    CHECK(e.view({4, 3, 1}).has_value());

    // No elements: any shape with zero elements.
    const Layout z = Layout::contiguous({0, 3}).transpose(0, 1);
    CHECK(z.view({0}).has_value());
    CHECK(z.view({3, 0, 2}).has_value());
}

TEST_CASE("layout: view agrees with a brute force on many strided layouts") {
    std::mt19937 rng(12345);
    auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
    int64_t views = 0, refusals = 0;
    for (int trial = 0; trial < 300; ++trial) {
        Shape base;
        const int64_t rank = pick(1, 4);
        for (int64_t d = 0; d < rank; ++d) base.push_back(pick(1, 5));
        Layout l = Layout::contiguous(base);
        l.offset = pick(0, 3);
        // A few random view steps: permute, slice with a step, unsqueeze, expand a size-1 dim.
        for (int step = 0; step < 3; ++step) {
            switch (pick(0, 3)) {
            case 0: {
                std::vector<int64_t> perm(size_t(l.rank()));
                std::iota(perm.begin(), perm.end(), 0);
                std::shuffle(perm.begin(), perm.end(), rng);
                l = l.permute(perm);
                break;
            }
            case 1: {
                const int64_t d = pick(0, l.rank() - 1), n = l.shape[size_t(d)];
                const int64_t start = pick(0, n - 1);
                l = l.slice(d, start, pick(start + 1, n), pick(1, 2));
                break;
            }
            case 2: l = l.unsqueeze(pick(0, l.rank())); break;
            case 3: {
                Shape target = l.shape;
                for (auto& s : target) if (s == 1 && pick(0, 1)) s = pick(2, 3);
                l = l.expand(target);
                break;
            }
            }
        }
        const int64_t n = l.numel();
        if (n > 200) continue;
        for (size_t r = 0; r <= 4; ++r) {
            std::vector<Shape> targets;
            Shape prefix;
            factorizations(n, r, prefix, targets);
            for (const Shape& target : targets) {
                const bool exists = view_exists(l, target);
                const std::optional<Layout> got = l.view(target);
                INFO("layout " << shape_str(l.shape) << " strides " << shape_str(l.strides)
                               << " -> " << shape_str(target));
                REQUIRE(got.has_value() == exists);
                if (got) {
                    CHECK(got->shape == target);
                    REQUIRE(offsets(*got) == offsets(l));
                    ++views;
                } else {
                    ++refusals;
                }
                if (l.is_contiguous()) CHECK(got.has_value());
            }
        }
    }
    CHECK(views > 1000);
    CHECK(refusals > 300);
}
