// training/train_keys_dist.cpp: ./train's [dist] keys: data-parallel training (dist/). They are read only
// when the run is started by mpirun or ./train --nproc N; a single-process run ignores them.
#include "training/train_keys.h"

namespace lumen::training::keys {

void add_dist_keys(Registry& r) {
    const DistConfig d;
    r.schema.add_section("dist", "data parallelism (mpirun -np N ./train CONFIG, or ./train CONFIG --nproc N)");
    {
        Key k = make("dist.grad_dtype", KeyType::choice, std::string("float32"),
                     "gradients on the wire: float32 (exact sums) or bfloat16 (half the traffic, rounded sums)");
        k.choices = {"float32", "bfloat16"};
        r.schema.add(std::move(k));
        r.bindings["dist.grad_dtype"] = {
            [](TrainConfig& c, const Value& v) { c.dist.grad_dtype = dtype_from_name(std::get<std::string>(v)); },
            [](const TrainConfig& c) -> Value {
                return std::string(c.dist.grad_dtype == DType::bf16 ? "bfloat16" : "float32");
            }};
    }
    {
        Key k = make("dist.bucket_mb", KeyType::real, d.bucket_mb,
                     "gradient bucket size in MB (f32): each bucket is all-reduced as soon as backward has filled it");
        k.check = real_at_least(0, true);
        r.schema.add(std::move(k));
        r.bindings["dist.bucket_mb"] = field<double>([](auto& c) -> auto& { return c.dist.bucket_mb; });
    }
    {
        Key k = make("dist.zero1", KeyType::boolean, d.zero1,
                     "ZeRO-1: optimizer state sharded across ranks (whole tensors), parameters broadcast after the step");
        r.schema.add(std::move(k));
        r.bindings["dist.zero1"] = field<bool>([](auto& c) -> auto& { return c.dist.zero1; });
    }
    {
        Key k = make("dist.timeout_s", KeyType::real, d.timeout_s,
                     "a collective not finished after this many seconds aborts the job naming the rank; 0 = never");
        k.check = real_at_least(0);
        r.schema.add(std::move(k));
        r.bindings["dist.timeout_s"] = field<double>([](auto& c) -> auto& { return c.dist.timeout_s; });
    }
}

}  // namespace lumen::training::keys
