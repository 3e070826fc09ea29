// training/train_keys_lora.cpp: ./train's [lora] keys (LoRA fine-tuning: nn/lora.h) and the rules
// that tie them to the export keys (io.export_hf, io.merge_lora).
#include "training/train_keys.h"

#include <regex>

namespace lumen::training::keys {

void add_lora_keys(Registry& r) {
    const LoraConfig l;
    r.schema.add_section("lora", "LoRA adapters: only the adapters train, every other parameter is frozen");
    const auto lora_only = [](const Config& c) {
        return c.get_int("lora.r") > 0 ? std::string() : std::string("read only when lora.r > 0 (LoRA is off)");
    };
    {
        Key k = make("lora.r", KeyType::integer, l.r, "adapter rank; 0 = no LoRA (NewComputeBench uses 32)");
        k.check = int_at_least(0);
        k.dotted_only = true;  // lora.r, never a bare r (lora.dropout's bare name is model.dropout's)
        r.schema.add(std::move(k));
        r.bindings["lora.r"] = field<int64_t>([](auto& c) -> auto& { return c.lora.r; });
    }
    {
        Key k = make("lora.alpha", KeyType::real, l.alpha, "the adapter's output is scaled by alpha / r");
        k.check = real_at_least(0, true);
        k.inactive = lora_only;
        k.dotted_only = true;
        r.schema.add(std::move(k));
        r.bindings["lora.alpha"] = field<double>([](auto& c) -> auto& { return c.lora.alpha; });
    }
    {
        Key k = make("lora.dropout", KeyType::real, l.dropout, "dropout on the adapter's input (digital layers only)");
        k.check = [](const Value& v) {
            const double x = std::get<double>(v);
            return x >= 0 && x < 1 ? std::string() : std::string("must be in [0, 1)");
        };
        k.inactive = lora_only;
        k.dotted_only = true;
        r.schema.add(std::move(k));
        r.bindings["lora.dropout"] = field<double>([](auto& c) -> auto& { return c.lora.dropout; });
    }
    {
        Key k = make("lora.targets", KeyType::string, l.targets,
                     "ECMAScript regex, full match against a Linear's dotted name (blocks.0.attn.c_attn, ...); no spaces "
                     "or commas");
        k.check = [](const Value& v) {
            try {
                std::regex re(std::get<std::string>(v), std::regex::ECMAScript);
            } catch (const std::regex_error& e) {
                return fmt::format("not a valid ECMAScript regex ({})", e.what());
            }
            return std::string();
        };
        k.inactive = lora_only;
        k.dotted_only = true;
        r.schema.add(std::move(k));
        r.bindings["lora.targets"] = field<std::string>([](auto& c) -> auto& { return c.lora.targets; });
    }
}

}  // namespace lumen::training::keys
