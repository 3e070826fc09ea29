// tests/training/schedule_test.cpp: the learning-rate schedules against specs/wiggle.md §7's two tables
// (every value), the wsd S = 10000 values, decay_lr = false, and the validation rules (§11 row 7).
//
// The toy table prints 9 digits, so its irrational entries are checked twice: against closed forms
// written here from the spec's formula with exact cosines (cos π/10 = sqrt(10 + 2√5)/4, ...) at relative
// 1e-12, and against the printed digits at their own precision.
#include "training/schedule.h"

#include "tests/harness.h"

#include <cmath>
#include <string>
#include <vector>

using namespace lumen::training;

namespace {

struct Point {
    int64_t it;
    double exact;    // closed form or exact decimal from the spec
    double printed;  // the table's printed value (== exact when the table is exact)
};

void check_points(const ScheduleConfig& s, const std::vector<Point>& points) {
    for (const Point& p : points) {
        CAPTURE(p.it);
        const double got = lr_at(s, p.it);
        CHECK(std::abs(got - p.exact) <= 1e-12 * std::abs(p.exact));
        CHECK(std::abs(got - p.printed) <= 5.01e-10);  // the table's 9 decimals
    }
}

ScheduleConfig toy(LrSchedule kind) {
    ScheduleConfig s;
    s.learning_rate = 1.0;
    s.min_lr = 0.1;
    s.warmup_iters = 4;
    s.stable_iters = kind == LrSchedule::wsd ? 4 : 0;
    s.lr_decay_iters = 14;
    s.max_iters = 16;
    s.schedule = kind;
    return s;
}

ScheduleConfig v2(LrSchedule kind) {
    ScheduleConfig s;
    s.learning_rate = 6e-4;
    s.min_lr = 6e-5;
    s.warmup_iters = 2000;
    s.lr_decay_iters = 200000;
    s.max_iters = 200000;
    s.schedule = kind;
    return s;
}

// 0.1 + ½(1 + c)(1 − 0.1): the toy cosine at a point whose cos(πr) is c.
double toy_cos(double c) { return 0.1 + 0.45 * (1.0 + c); }

const double sqrt5 = std::sqrt(5.0);
const double cos_pi_10 = std::sqrt(10.0 + 2.0 * sqrt5) / 4.0;  // r = 0.1
const double cos_pi_5 = (1.0 + sqrt5) / 4.0;                   // r = 0.2
const double cos_7pi_10 = -std::sqrt(10.0 - 2.0 * sqrt5) / 4.0;  // r = 0.7
const double cos_pi_6 = std::sqrt(3.0) / 2.0;                  // r = 1/6

}  // namespace

TEST_CASE("schedule: toy table (lr 1, m 0.1, W 4, S 4, D 14), every schedule and value") {
    check_points(toy(LrSchedule::cosine), {{0, 0.2, 0.2},
                                           {3, 0.8, 0.8},
                                           {4, 1.0, 1.0},
                                           {5, toy_cos(cos_pi_10), 0.977975432},
                                           {6, toy_cos(cos_pi_5), 0.914057647},
                                           {9, 0.55, 0.55},
                                           {11, toy_cos(cos_7pi_10), 0.285496636},
                                           {13, toy_cos(-cos_pi_10), 0.122024568},
                                           {14, 0.1, 0.1},
                                           {15, 0.1, 0.1}});
    check_points(toy(LrSchedule::wsd), {{0, 0.2, 0.2},
                                        {3, 0.8, 0.8},
                                        {4, 1.0, 1.0},
                                        {5, 1.0, 1.0},
                                        {6, 1.0, 1.0},
                                        {9, toy_cos(cos_pi_6), 0.939711432},
                                        {11, 0.55, 0.55},
                                        {13, toy_cos(-cos_pi_6), 0.160288568},
                                        {14, 0.1, 0.1},
                                        {15, 0.1, 0.1}});
    check_points(toy(LrSchedule::linear), {{0, 0.2, 0.2},
                                           {3, 0.8, 0.8},
                                           {4, 1.0, 1.0},
                                           {5, 0.91, 0.91},
                                           {6, 0.82, 0.82},
                                           {9, 0.55, 0.55},
                                           {11, 0.37, 0.37},
                                           {13, 0.19, 0.19},
                                           {14, 0.1, 0.1},
                                           {15, 0.1, 0.1}});
    check_points(toy(LrSchedule::constant), {{0, 0.2, 0.2},
                                             {3, 0.8, 0.8},
                                             {4, 1.0, 1.0},
                                             {5, 1.0, 1.0},
                                             {6, 1.0, 1.0},
                                             {9, 1.0, 1.0},
                                             {11, 1.0, 1.0},
                                             {13, 1.0, 1.0},
                                             {14, 1.0, 1.0},
                                             {15, 1.0, 1.0}});
}

TEST_CASE("schedule: WiggleGPT v2 table (6e-4 -> 6e-5, W 2000, D 200000) at relative 1e-12") {
    // The printed values carry 13 significant digits, so they are the references themselves.
    for (LrSchedule kind : {LrSchedule::cosine, LrSchedule::linear}) {
        const ScheduleConfig s = v2(kind);
        const bool cos = kind == LrSchedule::cosine;
        const std::vector<std::pair<int64_t, double>> table = {
            {0, 2.998500749625e-7},
            {1999, 5.997001499250e-4},
            {2000, 6e-4},
            {51500, cos ? 5.209188309204e-4 : 4.65e-4},
            {101000, 3.3e-4},
            {150500, cos ? 1.390811690796e-4 : 1.95e-4},
            {200000, 6e-5},
            {200001, 6e-5}};
        for (const auto& [it, want] : table) {
            const std::string name(schedule_name(kind));
            CAPTURE(it);
            CAPTURE(name);
            CHECK(std::abs(lr_at(s, it) - want) <= 1e-12 * want);
        }
    }
    // wsd with S = 10000 on the same settings.
    ScheduleConfig s = v2(LrSchedule::wsd);
    s.stable_iters = 10000;
    CHECK(validate(s).empty());
    CHECK(std::abs(lr_at(s, 11999) - 6e-4) <= 1e-12 * 6e-4);
    CHECK(std::abs(lr_at(s, 12000) - 6e-4) <= 1e-12 * 6e-4);
    CHECK(std::abs(lr_at(s, 106000) - 3.3e-4) <= 1e-12 * 3.3e-4);
    CHECK(std::abs(lr_at(s, 1999) - 5.997001499250e-4) <= 1e-12 * 6e-4);  // warmup as every schedule
}

TEST_CASE("schedule: the multiplier is lr_at / learning_rate") {
    const ScheduleConfig s = v2(LrSchedule::cosine);
    CHECK(std::abs(lr_multiplier(s, 101000) - 0.55) <= 1e-12 * 0.55);  // 3.3e-4 / 6e-4
    CHECK(std::abs(lr_multiplier(s, 0) - 1.0 / 2001.0) <= 1e-12 / 2001.0);
    CHECK(lr_multiplier(s, 2000) == 1.0);
    ScheduleConfig zero = s;
    zero.learning_rate = zero.min_lr = 0;
    CHECK(lr_multiplier(zero, 5) == 0.0);
}

TEST_CASE("schedule: decay_lr = false gives learning_rate at every iteration, with no warmup") {
    for (LrSchedule kind : {LrSchedule::cosine, LrSchedule::wsd, LrSchedule::constant, LrSchedule::linear}) {
        ScheduleConfig s = v2(kind);
        s.decay_lr = false;
        s.lr_decay_iters = 0;  // not read: valid
        CHECK_NOTHROW(validate(s));
        CHECK(lr_at(s, 0) == 6e-4);
        CHECK(lr_at(s, 1999) == 6e-4);
        CHECK(lr_at(s, 250000) == 6e-4);
        CHECK(lr_multiplier(s, 0) == 1.0);
    }
}

TEST_CASE("schedule: invalid D, W, S and rates are rejected naming the keys") {
    ScheduleConfig s = toy(LrSchedule::cosine);
    CHECK(validate(s).empty());
    s.lr_decay_iters = 4;  // D = W
    CHECK_THROWS_CONTAINING(validate(s), "schedule.lr_decay_iters (4) must exceed schedule.warmup_iters (4)");
    s.lr_decay_iters = 3;  // D < W
    CHECK_THROWS_CONTAINING(validate(s), "schedule.lr_decay_iters");
    s.schedule = LrSchedule::linear;
    CHECK_THROWS_CONTAINING(validate(s), "lr_schedule = linear");
    s.schedule = LrSchedule::constant;  // constant never decays: D is not read
    CHECK_NOTHROW(validate(s));

    ScheduleConfig w = toy(LrSchedule::wsd);
    CHECK(validate(w).empty());
    w.lr_decay_iters = 8;  // D = W + S: the reference divides by zero at it = D
    CHECK_THROWS_CONTAINING(validate(w), "schedule.stable_iters");
    w.lr_decay_iters = 9;
    CHECK_NOTHROW(validate(w));

    ScheduleConfig m = toy(LrSchedule::cosine);
    m.min_lr = 1.5;
    CHECK_THROWS_CONTAINING(validate(m), "schedule.min_lr (1.5) must not exceed schedule.learning_rate (1)");
    m = toy(LrSchedule::cosine);
    m.warmup_iters = -1;
    CHECK_THROWS_CONTAINING(validate(m), "schedule.warmup_iters must be ≥ 0");
    m = toy(LrSchedule::wsd);
    m.stable_iters = -2;
    CHECK_THROWS_CONTAINING(validate(m), "schedule.stable_iters must be ≥ 0");
    m = toy(LrSchedule::cosine);
    m.learning_rate = std::nan("");
    CHECK_THROWS_CONTAINING(validate(m), "schedule.learning_rate must be finite");
}

TEST_CASE("schedule: stable_iters without wsd is ignored with a warning") {
    ScheduleConfig s = v2(LrSchedule::cosine);
    s.stable_iters = 10000;  // the optimized config does exactly this
    const std::vector<std::string> warnings = validate(s);
    REQUIRE(warnings.size() == 1);
    CHECK(warnings[0].find("schedule.stable_iters = 10000 is ignored") != std::string::npos);
    CHECK(lr_at(s, 2001) < 6e-4);  // still cosine: no plateau
    s.schedule = LrSchedule::wsd;
    CHECK(validate(s).empty());
}

TEST_CASE("schedule: names parse and print") {
    for (LrSchedule kind : {LrSchedule::cosine, LrSchedule::wsd, LrSchedule::constant, LrSchedule::linear})
        CHECK(parse_schedule(schedule_name(kind)) == kind);
    CHECK(!parse_schedule("step").has_value());
}
