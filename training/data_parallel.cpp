// training/data_parallel.cpp: one rank of a data-parallel run (see training/data_parallel.h), and the
// ./train --nproc launcher.
#include "training/data_parallel.h"

#include "core/error.h"
#include "dist/grad_reducer.h"
#include "dist/zero1.h"
#include "nn/optical_statistics.h"
#include "optim/groups.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

namespace lumen::training {

DataParallel::DataParallel(const dist::Launch& launch, Device device, const DistConfig& config) : config_(config) {
    dist::CommOptions options;
    options.timeout_s = config.timeout_s;
    comm_ = dist::make_communicator(device, options);
    check(comm_->world() == launch.world && comm_->rank() == launch.rank, "train",
          fmt::format("MPI says rank {} of {}, the launcher's environment rank {} of {}", comm_->rank(), comm_->world(),
                      launch.rank, launch.world));
}

DataParallel::~DataParallel() = default;

std::unique_ptr<optim::Optimizer> DataParallel::make_optimizer(const std::vector<nn::Parameter>& params,
                                                               const optim::GroupConfig& groups) {
    std::vector<optim::Group> full = optim::make_groups(params, groups);
    params_.clear();
    for (const nn::Parameter& p : params)
        if (p.tensor.requires_grad()) params_.push_back(p);
    reducer_.reset();  // the old buckets' gradient views go with it
    dist::ReducerOptions ro;
    ro.wire = config_.grad_dtype;
    ro.bucket_mb = config_.bucket_mb;
    reducer_ = std::make_unique<dist::GradReducer>(*comm_, params_, ro);
    in_group_order_.clear();  // as the optimizer lists them: the clip's order and ZeRO-1's plan
    for (const optim::Group& g : full) in_group_order_.insert(in_group_order_.end(), g.params.begin(), g.params.end());
    zero_.reset();
    if (!config_.zero1) return std::make_unique<optim::Optimizer>(std::move(full));
    zero_ = std::make_unique<dist::ZeroPlan>(dist::plan_shards(in_group_order_, world()));
    return std::make_unique<optim::Optimizer>(dist::own_groups(full, *zero_, rank()));
}

void DataParallel::arm() { reducer_->arm(); }

void DataParallel::zero_grad() { reducer_->zero_grad(); }

void DataParallel::finish_gradients() { reducer_->finish(); }

void DataParallel::after_step(nn::GPT& model) {
    if (zero_) dist::broadcast_parameters(*comm_, in_group_order_, *zero_);
    nn::average_optical_statistics(model, world(), [this](Tensor& slab) { comm_->all_reduce_sum(slab); });
}

optim::StateDict DataParallel::full_state(const optim::Optimizer& optimizer) {
    if (!zero_) return optimizer.state_dict();
    return dist::gather_state_dict(*comm_, optimizer, *zero_);
}

void DataParallel::load_state(optim::Optimizer& optimizer, const optim::StateDict& full) {
    if (!zero_) return optimizer.load_state_dict(full);
    dist::load_own_state(optimizer, full, *zero_, rank());
}

bool DataParallel::any(bool local) {
    std::vector<int64_t> v{local ? 1 : 0};
    comm_->all_reduce_sum_host(v);
    return v[0] > 0;
}

void DataParallel::set_iteration(int64_t iteration) { comm_->set_context(fmt::format("iteration {}", iteration)); }

std::vector<std::string> DataParallel::report() const {
    std::vector<std::string> lines;
    lines.push_back(fmt::format("data parallel: {} ranks over {} (rank 0 on {}), each running GA/{} micro-steps",
                                world(), dist::backend_name(comm_->backend()), comm_->device().str(), world()));
    for (const std::string& line : reducer_->report()) lines.push_back(line);
    if (zero_) lines.push_back(dist::describe(*zero_, rank()));
    return lines;
}

void quiet_other_ranks(const dist::Launch& launch) {
    // Multicast over NVLink must stay off (README: "Data-parallel training"); whoever started us.
    setenv("NCCL_NVLS_ENABLE", "0", 1);
    if (launch.under_mpirun && launch.rank != 0) check(std::freopen("/dev/null", "w", stdout) != nullptr, "train",
                                                       "could not redirect the output of rank " + std::to_string(launch.rank));
}

void exec_mpirun(int nproc, int argc, char** argv) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path self = fs::read_symlink("/proc/self/exe", ec);
    std::vector<std::string> args = {"mpirun", "-np", std::to_string(nproc), "--bind-to", "none", "--oversubscribe",
                                     "-x", "NCCL_NVLS_ENABLE=0"};
    if (geteuid() == 0) args.push_back("--allow-run-as-root");  // containers and CI run as root
    if (!std::getenv("OMP_NUM_THREADS")) {  // the CPU's cores shared between the ranks
        const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
        args.push_back("-x");
        args.push_back(fmt::format("OMP_NUM_THREADS={}", std::max(1u, cores / unsigned(nproc))));
    }
    args.push_back(ec ? std::string(argv[0]) : self.string());
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--nproc") {
            ++i;
            continue;
        }
        if (a.starts_with("--nproc=")) continue;
        args.push_back(a);
    }
    setenv("NCCL_NVLS_ENABLE", "0", 1);
    std::vector<char*> cargs;
    for (std::string& a : args) cargs.push_back(a.data());
    cargs.push_back(nullptr);
    std::fflush(stdout);
    execvp("mpirun", cargs.data());
    throw Error(fmt::format("train: --nproc {}: could not start mpirun ({}): install Open MPI (scripts/install-deps.sh "
                            "installs openmpi-bin) or start the ranks yourself with mpirun -np {} ./train CONFIG",
                            nproc, std::strerror(errno), nproc));
}

}  // namespace lumen::training
